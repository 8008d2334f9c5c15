import NIOCore
import NIOHTTP1

/// Reads a proxy's answer to `CONNECT` (RFC 9110 §9.3.6): the status line and headers, bounded, then whatever
/// bytes follow them, which already belong to the tunnel.
struct ProxyConnectParser {
    /// What the bytes received so far amount to.
    enum Result: Equatable {
        case needMoreData
        /// A 2xx answer: the tunnel is open; `leftover` came through it after the head.
        case established(leftover: ByteBuffer)
        /// Any other status, with the reason phrase.
        case refused(HTTPResponseStatus, reason: String)
        case malformed(String)
        case tooLarge(Int)
    }

    /// The most bytes a response head may take.
    static let maxHeadSize = 16 * 1024

    private var buffer = ByteBuffer()
    private static let endOfHead: [UInt8] = Array("\r\n\r\n".utf8)

    mutating func receive(_ bytes: inout ByteBuffer) -> Result {
        self.buffer.writeBuffer(&bytes)
        guard let end = self.buffer.readableBytesView.firstRange(of: Self.endOfHead) else {
            return self.buffer.readableBytes > Self.maxHeadSize ? .tooLarge(Self.maxHeadSize) : .needMoreData
        }
        let headLength = end.lowerBound - self.buffer.readerIndex
        guard headLength + Self.endOfHead.count <= Self.maxHeadSize else { return .tooLarge(Self.maxHeadSize) }
        let head = self.buffer.readString(length: headLength) ?? ""
        self.buffer.moveReaderIndex(forwardBy: Self.endOfHead.count)
        let statusLine = head.prefix { $0 != "\r" && $0 != "\n" }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let code = Int(parts[1]),
            (100...599).contains(code)
        else {
            return .malformed("status line '\(statusLine.prefix(100))'")
        }
        let reason = parts.count == 3 ? String(parts[2]) : ""
        // A 2xx answer to CONNECT has no body (RFC 9110 §9.3.6): what follows the head is the tunnel's.
        guard (200..<300).contains(code) else {
            return .refused(HTTPResponseStatus(statusCode: code, reasonPhrase: reason), reason: reason)
        }
        return .established(leftover: self.buffer)
    }
}

/// Asks an HTTP proxy for a tunnel to the WebSocket server, then hands the channel to `established`, which
/// installs TLS and the handshake handlers behind this one, and leaves the pipeline. Fails the connection's
/// promise with a ``WebSocketClientError`` when the proxy refuses or the deadline passes first.
final class ProxyConnectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case idle
        case awaitingResponse(ProxyConnectParser)
        case done
    }

    private let proxy: WebSocketProxy
    private let target: WebSocketURL
    private let deadline: NIODeadline
    private let promise: EventLoopPromise<WebSocket>
    private let established: (any Channel) throws -> Void
    private var state = State.idle
    private var timeout: Scheduled<Void>?

    init(
        proxy: WebSocketProxy,
        target: WebSocketURL,
        deadline: NIODeadline,
        promise: EventLoopPromise<WebSocket>,
        established: @escaping (any Channel) throws -> Void
    ) {
        self.proxy = proxy
        self.target = target
        self.deadline = deadline
        self.promise = promise
        self.established = established
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.timeout = context.eventLoop.assumeIsolated().scheduleTask(deadline: self.deadline) {
            self.fail(.handshakeTimeout, context: context)
        }
        if context.channel.isActive { self.sendRequest(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timeout?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        self.sendRequest(context: context)
        context.fireChannelActive()
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard case .idle = self.state else { return }
        self.state = .awaitingResponse(ProxyConnectParser())
        let request = self.proxy.connectRequest(host: self.target.host, port: self.target.port)
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .awaitingResponse(var parser) = self.state else { return }
        var bytes = self.unwrapInboundIn(data)
        let result = parser.receive(&bytes)
        self.state = .awaitingResponse(parser)
        switch result {
        case .needMoreData:
            break
        case .established(let leftover):
            self.state = .done
            self.timeout?.cancel()
            do {
                try self.established(context.channel)
            } catch {
                self.promise.fail(error)
                context.close(promise: nil)
                return
            }
            if leftover.readableBytes > 0 { context.fireChannelRead(self.wrapInboundOut(leftover)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        case .refused(let status, let reason):
            self.fail(.proxyRefused(status, reason: reason), context: context)
        case .malformed(let what):
            self.fail(.invalidProxy(self.proxy.address, reason: "malformed answer to CONNECT: \(what)"), context: context)
        case .tooLarge(let limit):
            self.fail(.responseTooLarge(limit), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(.connectionClosedDuringHandshake, context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard case .done = self.state else {
            self.state = .done
            self.timeout?.cancel()
            self.promise.fail(error)
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    private func fail(_ error: WebSocketClientError, context: ChannelHandlerContext) {
        if case .done = self.state { return }
        self.state = .done
        self.timeout?.cancel()
        self.promise.fail(error)
        context.close(promise: nil)
    }
}

/// Bound to its channel's event loop.
@available(*, unavailable)
extension ProxyConnectHandler: Sendable {}
