import NIOCore
import NIOPosix

/// Exact-bytes exchanges over TCP, for tests that must send what no well-behaved client would (a malformed
/// upgrade request, a hand-made frame) and read exactly what comes back.
public enum RawTCP {
    /// Sends `bytes`, then reads until the peer closes the connection, `limit` bytes arrived or what arrived
    /// contains `until`; then closes the connection.
    public static func exchange(
        host: String = "127.0.0.1",
        port: Int,
        from source: String? = nil,
        send bytes: [UInt8],
        until marker: [UInt8]? = nil,
        limit: Int = 1 << 20
    ) async throws -> [UInt8] {
        let channel = try await self.bootstrap(from: source)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            do {
                try await outbound.write(ByteBuffer(bytes: bytes))
            } catch ChannelError.ioOnClosedChannel {
                // The peer answered and closed before the request left (a server refusing a connection at once):
                // its answer is still to be read.
            }
            var received: [UInt8] = []
            for try await chunk in inbound {
                received += chunk.readableBytesView
                if received.count >= limit { break }
                if let marker, received.firstRange(of: marker) != nil { break }
            }
            return received
        }
    }

    /// Sends `text`, then reads until the peer closes the connection (or the text contains `until`); returns
    /// what came back as text.
    public static func exchange(
        host: String = "127.0.0.1", port: Int, from source: String? = nil, send text: String, until marker: String? = nil
    ) async throws -> String {
        let reply = try await self.exchange(host: host, port: port, from: source, send: Array(text.utf8), until: marker.map { Array($0.utf8) })
        return String(decoding: reply, as: UTF8.self)
    }

    /// A client bootstrap whose connections leave from `source` (any local address when `nil`).
    private static func bootstrap(from source: String?) throws -> ClientBootstrap {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        guard let source else { return bootstrap }
        return bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0))
    }

    /// Opens a connection from `source` (a loopback address such as 127.0.0.2, to play another client) that sends
    /// `bytes` (nothing by default: a silent client, or a partial request) and then holds it; close it when done.
    /// With `reading` false it never reads what comes back (a stalled client: the peer's writes back up).
    public static func hold(
        host: String = "127.0.0.1", port: Int, from source: String? = nil, send bytes: [UInt8] = [], reading: Bool = true
    ) async throws -> any Channel {
        let channel = try await self.bootstrap(from: source)
            .channelOption(.autoRead, value: reading)
            .connect(host: host, port: port).get()
        if !bytes.isEmpty { try await channel.writeAndFlush(ByteBuffer(bytes: bytes)) }
        return channel
    }
}

/// A one-shot TCP server that answers every connection with fixed bytes, then closes it. Tests use it to play a
/// misbehaving WebSocket server during a client's handshake.
public final class CannedResponseServer: Sendable {
    private let channel: any Channel

    /// The port it listens on.
    public var port: Int { self.channel.localAddress!.port! }

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Starts listening on 127.0.0.1; `respond` gets the request bytes and returns the answer. With
    /// `closeAfterResponse` false the connection stays open after the answer (a server that never closes).
    public static func start(
        closeAfterResponse: Bool = true,
        respond: @escaping @Sendable (String) -> String
    ) async throws -> CannedResponseServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        CannedHandler(respond: respond, closeAfterResponse: closeAfterResponse))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return CannedResponseServer(channel: channel)
    }

    /// Stops listening.
    public func close() async throws {
        try await self.channel.close()
    }
}

private final class CannedHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let respond: @Sendable (String) -> String
    private let closeAfterResponse: Bool
    private var request = ByteBuffer()
    private var answered = false

    init(respond: @escaping @Sendable (String) -> String, closeAfterResponse: Bool) {
        self.respond = respond
        self.closeAfterResponse = closeAfterResponse
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        self.request.writeBuffer(&bytes)
        let text = String(buffer: self.request)
        guard !self.answered, text.contains("\r\n\r\n") else { return }
        self.answered = true
        let answer = self.respond(text)
        let write = context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: answer)))
        if self.closeAfterResponse {
            write.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}
