import NIOCore
import NIOHTTP1

/// Runs the client side of the opening handshake: sends the request, checks the answer (RFC 6455 §4.1) and swaps
/// the HTTP handlers for ``WebSocketChannelHandler``, or fails with a specific ``WebSocketClientError``.
final class ClientUpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private enum State {
        case idle
        case awaitingResponse
        case upgrading(ClientHandshake.Agreement)
        case collectingError(HTTPResponseHead, ByteBuffer)
        case done
    }

    private let url: WebSocketURL
    private let configuration: WebSocketClientConfiguration
    private let requestHead: HTTPRequestHead
    private let key: String
    private let deadline: NIODeadline
    private let httpHandlers: [any RemovableChannelHandler]
    private let promise: EventLoopPromise<WebSocket>
    private var state = State.idle
    private var timeout: Scheduled<Void>?

    /// The most body bytes of a refusal kept for the caller.
    private static let maxErrorBody = 64 * 1024

    init(
        url: WebSocketURL,
        configuration: WebSocketClientConfiguration,
        headers: HTTPHeaders,
        deadline: NIODeadline,
        httpHandlers: [any RemovableChannelHandler],
        promise: EventLoopPromise<WebSocket>
    ) {
        self.url = url
        self.configuration = configuration
        self.deadline = deadline
        self.httpHandlers = httpHandlers
        self.promise = promise
        self.key = HandshakeRules.makeKey()
        self.requestHead = ClientHandshake.requestHead(
            url: url, key: self.key, subprotocols: configuration.subprotocols,
            compression: configuration.connection.compression, extraHeaders: headers)
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
        self.state = .awaitingResponse
        context.write(self.wrapOutboundOut(.head(self.requestHead)), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.unwrapInboundIn(data), self.state) {
        case (.head(let head), .awaitingResponse):
            guard head.status == .switchingProtocols else {
                self.state = .collectingError(head, context.channel.allocator.buffer(capacity: 0))
                return
            }
            switch ClientHandshake.validate(
                head, key: self.key, subprotocols: self.configuration.subprotocols,
                compression: self.configuration.connection.compression)
            {
            case .success(let agreement):
                self.state = .upgrading(agreement)
            case .failure(let error):
                self.fail(error, context: context)
            }
        case (.body(var part), .collectingError(let head, var body)):
            let room = Self.maxErrorBody - body.readableBytes
            if room > 0, let slice = part.readSlice(length: min(room, part.readableBytes)) {
                body.writeImmutableBuffer(slice)
            }
            self.state = .collectingError(head, body)
        case (.end, .collectingError(let head, let body)):
            self.fail(.unexpectedStatus(head.status, headers: head.headers, body: body), context: context)
        case (.end, .upgrading(let agreement)):
            self.upgrade(agreement, context: context)
        default:
            break
        }
    }

    private func upgrade(_ agreement: ClientHandshake.Agreement, context: ChannelHandlerContext) {
        self.state = .done
        self.timeout?.cancel()
        do {
            let socket = try WebSocket.install(
                on: context.channel, role: .client, request: self.requestHead, subprotocol: agreement.subprotocol,
                compression: agreement.compression, isSecure: self.url.isSecure,
                configuration: self.configuration.connection, position: .after(self))
            socket.finishUpgrade(context: context, removing: self.httpHandlers)
            self.promise.succeed(socket)
        } catch {
            self.promise.fail(error)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(.connectionClosedDuringHandshake, context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .done = self.state { return }
        self.state = .done
        self.timeout?.cancel()
        self.promise.fail(error)
        context.close(promise: nil)
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
extension ClientUpgradeHandler: Sendable {}
