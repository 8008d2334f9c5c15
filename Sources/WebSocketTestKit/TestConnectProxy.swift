import FoundationEssentials
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A real HTTP CONNECT proxy on 127.0.0.1 for tests of clients behind a proxy. It reads one `CONNECT host:port`
/// request per connection, checks `Proxy-Authorization` when it was started with credentials (407 with
/// `Proxy-Authenticate: Basic realm="test"` otherwise), connects to the target, answers 200 and relays bytes both
/// ways until either side closes. Only loopback targets are allowed (403 for others), so a test cannot reach out.
public final class TestConnectProxy: Sendable {
    private struct State {
        var tunnelsOpened = 0
        var targets: [String] = []
        var channels: [ObjectIdentifier: any Channel] = [:]
    }

    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    /// The port it listens on.
    public var port: Int { self.channel.localAddress!.port! }
    /// How many tunnels it opened (answered 200 to).
    public var tunnelsOpened: Int { self.state.withLockedValue { $0.tunnelsOpened } }
    /// The `CONNECT` authority ("host:port") of each tunnel, in order.
    public var targets: [String] { self.state.withLockedValue { $0.targets } }

    private init(channel: any Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    /// Starts listening on 127.0.0.1 on a free port; with `credentials` (user, password), clients must send them
    /// as `Proxy-Authorization: Basic`.
    public static func start(
        credentials: (String, String)? = nil,
        on group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TestConnectProxy {
        let state = NIOLockedValueBox(State())
        let expected = credentials.map { Data("\($0.0):\($0.1)".utf8).base64EncodedString() }
        let events = ConnectHandler.Events(
            track: { channel in
                let id = ObjectIdentifier(channel)
                state.withLockedValue { $0.channels[id] = channel }
                channel.closeFuture.whenComplete { _ in _ = state.withLockedValue { $0.channels.removeValue(forKey: id) } }
            },
            opened: { target in
                state.withLockedValue {
                    $0.tunnelsOpened += 1
                    $0.targets.append(target)
                }
            })
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    events.track(channel)
                    try channel.pipeline.syncOperations.addHandler(ConnectHandler(expectedCredentials: expected, events: events))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return TestConnectProxy(channel: channel, state: state)
    }

    /// Stops listening and closes every connection and tunnel.
    public func shutdown() async {
        try? await self.channel.close()
        let open = self.state.withLockedValue { Array($0.channels.values) }
        for channel in open {
            try? await channel.close()
        }
    }
}

/// Reads the `CONNECT` request head of one client connection, then opens the tunnel or refuses it.
private final class ConnectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Events: Sendable {
        var track: @Sendable (any Channel) -> Void
        var opened: @Sendable (String) -> Void
    }

    private enum State {
        case readingHead(ByteBuffer)
        case connecting(pending: ByteBuffer)
        case done
    }

    private static let maxHeadSize = 16 * 1024
    private let expectedCredentials: String?
    private let events: Events
    private var state = State.readingHead(ByteBuffer())

    init(expectedCredentials: String?, events: Events) {
        self.expectedCredentials = expectedCredentials
        self.events = events
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        switch self.state {
        case .readingHead(var buffer):
            buffer.writeBuffer(&bytes)
            self.state = .readingHead(buffer)
            guard let end = buffer.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) else {
                if buffer.readableBytes > Self.maxHeadSize { self.refuse("431 Request Header Fields Too Large", context: context) }
                return
            }
            let head = buffer.readString(length: end.upperBound - buffer.readerIndex) ?? ""
            self.handle(head: head, rest: buffer, context: context)
        case .connecting(var pending):
            pending.writeBuffer(&bytes)
            self.state = .connecting(pending: pending)
        case .done:
            break
        }
    }

    private func handle(head: String, rest: ByteBuffer, context: ChannelHandlerContext) {
        let lines = head.components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ")
        guard requestLine.count == 3, requestLine[0] == "CONNECT" else {
            return self.refuse("405 Method Not Allowed", context: context)
        }
        if let expected = self.expectedCredentials {
            let given = lines.dropFirst().first { $0.lowercased().hasPrefix("proxy-authorization:") }
                .map { $0.dropFirst("proxy-authorization:".count).split(separator: " ", omittingEmptySubsequences: true) }
            guard let given, given.count == 2, given[0].lowercased() == "basic", given[1] == expected else {
                return self.refuse("407 Proxy Authentication Required", headers: "Proxy-Authenticate: Basic realm=\"test\"\r\n", context: context)
            }
        }
        let authority = String(requestLine[1])
        guard let (host, port) = Self.split(authority: authority) else { return self.refuse("400 Bad Request", context: context) }
        guard Self.isLoopback(host) else { return self.refuse("403 Forbidden", context: context) }
        self.state = .connecting(pending: rest)
        let glue = GlueHandler.matchedPair()
        // The target's channel runs on this channel's event loop, so both glue handlers share one thread.
        let peerGlue = NIOLoopBound(glue.1, eventLoop: context.eventLoop)
        let events = self.events
        let connected = ClientBootstrap(group: context.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    events.track(channel)
                    try channel.pipeline.syncOperations.addHandler(peerGlue.value)
                }
            }
            .connect(host: host, port: port)
        connected.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let peer):
                guard case .connecting(let pending) = self.state, context.channel.isActive, peer.isActive else {
                    peer.close(promise: nil)
                    context.close(promise: nil)
                    return
                }
                self.state = .done
                self.events.opened(authority)
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n")), promise: nil)
                if pending.readableBytes > 0 { peer.writeAndFlush(pending, promise: nil) }
                do {
                    try context.pipeline.syncOperations.addHandler(glue.0)
                } catch {
                    context.close(promise: nil)
                }
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            case .failure:
                self.refuse("502 Bad Gateway", context: context)
            }
        }
    }

    private func refuse(_ status: String, headers: String = "", context: ChannelHandlerContext) {
        self.state = .done
        let answer = "HTTP/1.1 \(status)\r\n\(headers)Content-Length: 0\r\nConnection: close\r\n\r\n"
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: answer))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private static func split(authority: String) -> (String, Int)? {
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]) else { return nil }
        var host = authority[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return host.isEmpty ? nil : (String(host), port)
    }

    private static func isLoopback(_ host: String) -> Bool {
        if host.lowercased() == "localhost" { return true }
        guard let address = try? SocketAddress(ipAddress: host, port: 0) else { return false }
        switch address {
        case .v4: return host.hasPrefix("127.")
        case .v6: return address == (try? SocketAddress(ipAddress: "::1", port: 0))
        default: return false
        }
    }
}

/// One of two handlers that join two channels: what one reads, the other writes; when one closes, so does the
/// other; reading pauses while the other side cannot take more.
private final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The partner may have wanted to read before this side existed to write to.
        if context.channel.isWritable { self.partner?.partnerBecameWritable() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    private func partnerWrite(_ data: NIOAny) { self.context?.write(data, promise: nil) }
    private func partnerFlush() { self.context?.flush() }
    private func partnerClose() { self.context?.close(promise: nil) }
    private var partnerIsWritable: Bool { self.context?.channel.isWritable ?? false }

    private func partnerBecameWritable() {
        if self.pendingRead {
            self.pendingRead = false
            self.context?.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { self.partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { self.partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) { self.partner?.partnerClose() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if self.partner?.partnerIsWritable ?? false {
            context.read()
        } else {
            self.pendingRead = true
        }
    }
}
