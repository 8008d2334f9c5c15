import NIOCore
import NIOHTTP1
import NIOSSL
import SwiftASN1
import X509

/// Runs the server side of the opening handshake on a fresh connection: checks the request, asks the
/// application, answers 101 and swaps the HTTP handlers for ``WebSocketChannelHandler`` — or answers with a
/// specific error status and a one-line reason and closes the connection.
final class ServerUpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case awaitingHead
        case awaitingEnd(HTTPRequestHead, ServerHandshake.Offer)
        case deciding
        case done
    }

    private let configuration: WebSocketServerConfiguration
    private let decideNow: (@Sendable (WebSocketUpgradeRequest) -> WebSocketUpgradeDecision?)?
    private let onUpgrade: @Sendable (WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision
    /// Where an accepted connection is served, and where a pending decision is counted.
    private let served: ServedConnections
    /// Where the connection is counted from its arrival until its handshake ends (and, upgraded, until it closes).
    private let admission: ServerAdmission
    /// The connection's id in `admission` while it is counted as pending.
    private var pendingID: UInt64?
    private let httpHandlers: [any RemovableChannelHandler]
    private var state = State.awaitingHead
    private var timeout: Scheduled<Void>?
    /// The application's decision, while it runs in a task: cancelled when the connection goes first (a handshake
    /// timeout, the client leaving), so that the server's `run()` does not wait for an answer nobody needs.
    private var decision: Task<Void, Never>?

    init(
        configuration: WebSocketServerConfiguration,
        httpHandlers: [any RemovableChannelHandler],
        decideNow: (@Sendable (WebSocketUpgradeRequest) -> WebSocketUpgradeDecision?)? = nil,
        onUpgrade: @escaping @Sendable (WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision,
        served: ServedConnections,
        admission: ServerAdmission
    ) {
        self.admission = admission
        self.configuration = configuration
        self.httpHandlers = httpHandlers
        self.decideNow = decideNow
        self.onUpgrade = onUpgrade
        self.served = served
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.timeout = context.eventLoop.assumeIsolated().scheduleTask(in: self.configuration.handshakeTimeout) {
            switch self.state {
            case .awaitingHead, .awaitingEnd:
                self.refuse(.init(status: .requestTimeout, reason: "no complete upgrade request within the handshake timeout"), context: context)
            case .deciding:
                self.refuse(.init(status: .serviceUnavailable, reason: "the upgrade was not decided within the handshake timeout"), context: context)
            case .done:
                break
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timeout?.cancel()
        self.decision?.cancel()
        self.endHandshake(context: context, upgraded: false)
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        let refusal: WebSocketAdmissionRefusal
        switch self.admission.arrived(context.channel) {
        case .success(let id):
            self.pendingID = id
            return
        case .failure(let reason):
            refusal = reason
        }
        guard self.configuration.tls == nil else {
            // An answer would wait for the TLS handshake that the limit is there to avoid.
            self.state = .done
            self.timeout?.cancel()
            return context.close(promise: nil)
        }
        self.reject(
            .init(status: refusal.status, reason: refusal.reason(self.admission.limits), headers: ["Retry-After": "\(refusal.retryAfterSeconds)"]),
            context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.endHandshake(context: context, upgraded: false)
        context.fireChannelInactive()
    }

    /// Ends the connection's count as pending, once; an upgraded one is counted as open until it closes.
    private func endHandshake(context: ChannelHandlerContext, upgraded: Bool) {
        guard let id = self.pendingID else { return }
        self.pendingID = nil
        let address = context.channel.remoteAddress
        self.admission.handshakeEnded(id, upgraded: upgraded)
        if upgraded, self.admission.countsOpenConnections {
            let admission = self.admission
            context.channel.closeFuture.whenComplete { _ in admission.closed(address) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.unwrapInboundIn(data), self.state) {
        case (.head(let head), .awaitingHead):
            switch ServerHandshake.validate(head, limits: self.configuration.requestLimits) {
            case .success(let offer):
                self.state = .awaitingEnd(head, offer)
            case .failure(let rejection):
                self.refuse(rejection, context: context)
            }
        case (.body, .awaitingEnd):
            self.refuse(.init(status: .badRequest, reason: "an upgrade request must not have a body"), context: context)
        case (.end, .awaitingEnd(let head, let offer)):
            if let id = self.pendingID { self.admission.requestReceived(id) }
            self.decide(head: head, offer: offer, context: context)
        default:
            // Anything after the request (or after a rejection) is ignored until the connection closes.
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard case .awaitingHead = self.state else {
            context.close(promise: nil)
            return
        }
        switch error as? HTTPParserError {
        case .invalidEOFState?:
            // The client left (or was evicted) in the middle of its request: there is nobody to answer.
            context.close(promise: nil)
        case .headerOverflow?:
            self.refuse(.init(status: .requestHeaderFieldsTooLarge, reason: "request headers too large"), context: context)
        case .some(let parserError):
            self.refuse(.init(status: .badRequest, reason: "malformed HTTP request (\(parserError))"), context: context)
        case nil:
            if self.configuration.tls != nil {
                // Before the request, on a TLS listener: the TLS handshake failed or broke off.
                self.configuration.onEvent?(.tlsFailed(reason: "\(error)", address: context.channel.remoteAddress))
            }
            context.close(promise: nil)
        }
    }

    private func decide(head: HTTPRequestHead, offer: ServerHandshake.Offer, context: ChannelHandlerContext) {
        self.state = .deciding
        let (path, query) = Self.split(head.uri)
        let subject = try? context.pipeline.syncOperations.nioSSL_peerCertificate().flatMap {
            try Certificate(derEncoded: $0.toDERBytes()).subject.description
        }
        let request = WebSocketUpgradeRequest(
            head: head,
            path: path,
            query: query,
            remoteAddress: context.channel.remoteAddress,
            localAddress: context.channel.localAddress,
            isSecure: self.configuration.tls != nil,
            clientCertificateSubject: subject ?? nil,
            offeredSubprotocols: offer.subprotocols,
            selectedSubprotocol: ServerHandshake.chooseSubprotocol(offered: offer.subprotocols, supported: self.configuration.subprotocols)
        )
        if let decision = self.decideNow?(request) {
            return self.carryOut(decision, request: request, offer: offer, context: context)
        }
        let promise = context.eventLoop.makePromise(of: WebSocketUpgradeDecision.self)
        let onUpgrade = self.onUpgrade
        // The application decides in a task that prefers this connection's event loop: a decision that does not
        // wait for anything completes on this thread, with no hop to the global executor and back. The server
        // counts the decision until it is carried out (an accepted connection is then served), so that its
        // `run()` does not return while the task runs.
        let served = self.served
        served.decisionStarted()
        self.decision = Task(executorPreference: EventLoopTaskExecutor.of(context.eventLoop)) {
            promise.succeed(await onUpgrade(request))
        }
        promise.futureResult.assumeIsolated().whenSuccess { decision in
            defer { served.decisionEnded() }
            guard case .deciding = self.state, context.channel.isActive else { return }
            self.carryOut(decision, request: request, offer: offer, context: context)
        }
    }

    private func carryOut(_ decision: WebSocketUpgradeDecision, request: WebSocketUpgradeRequest, offer: ServerHandshake.Offer, context: ChannelHandlerContext) {
        switch decision {
        case .reject(let rejection):
            self.reject(rejection, context: context)
        case .accept(let acceptance):
            self.accept(acceptance, request: request, offer: offer, context: context)
        }
    }

    private func accept(_ acceptance: WebSocketAcceptance, request: WebSocketUpgradeRequest, offer: ServerHandshake.Offer, context: ChannelHandlerContext) {
        self.state = .done
        self.timeout?.cancel()
        let connection = acceptance.connection ?? self.configuration.connection
        let compression = connection.compression.flatMap {
            PerMessageDeflateNegotiation.accept(offers: offer.extensions, configuration: $0)
        }
        let subprotocol = acceptance.omitSubprotocol ? nil : (acceptance.subprotocol ?? request.selectedSubprotocol)
        let headers = ServerHandshake.responseHeaders(
            key: offer.key, subprotocol: subprotocol, extensions: compression?.headerValue, extra: acceptance.headers)
        do {
            let socket = try WebSocket.install(
                on: context.channel, role: .server, request: request.head, subprotocol: subprotocol,
                compression: compression, isSecure: request.isSecure, configuration: connection,
                position: .after(self))
            self.endHandshake(context: context, upgraded: true)
            // The application learns of the connection before the client does, so a client can never send (or
            // be sent) something the application does not know about yet.
            acceptance.onInstalled?(socket)
            let head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
            context.writeAndFlush(self.wrapOutboundOut(.head(head)), promise: nil)
            socket.finishUpgrade(context: context, removing: self.httpHandlers)
            self.served.serve(socket, handler: acceptance.handler)
        } catch {
            context.close(promise: nil)
        }
    }

    /// Refuses a request on the server's own account (not an admission limit, not the application's decision):
    /// reported as ``WebSocketServerEvent/rejected(status:reason:address:)``, then answered.
    private func refuse(_ rejection: WebSocketHandshakeRejection, context: ChannelHandlerContext) {
        self.configuration.onEvent?(.rejected(status: rejection.status, reason: rejection.reason, address: context.channel.remoteAddress))
        self.reject(rejection, context: context)
    }

    private func reject(_ rejection: WebSocketHandshakeRejection, context: ChannelHandlerContext) {
        self.state = .done
        self.timeout?.cancel()
        self.endHandshake(context: context, upgraded: false)
        let body = ByteBuffer(string: rejection.reason + "\n")
        var headers = rejection.headers
        headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        headers.replaceOrAdd(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: rejection.status, headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { result in
            guard case .success = result, self.configuration.tls == nil, self.admission.startLingering() else {
                return context.close(promise: nil)
            }
            // A lingering close, as HTTP servers do: the answer may leave before the client has sent its whole
            // request (an admission refusal answers at once), and closing with unread input would reset the
            // connection and lose the answer. Output is shut down, input is read and dropped until the client
            // closes, for at most `lingerTime`; at most `ServerAdmission.maxLingering` connections linger at once.
            let admission = self.admission
            context.channel.closeFuture.whenComplete { _ in admission.endLingering() }
            context.close(mode: .output, promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerTime) {
                if context.channel.isActive { context.close(promise: nil) }
            }
        }
    }

    /// How long a refused connection's input is drained after its answer left.
    static let lingerTime = TimeAmount.seconds(1)

    /// Splits a request target into path and query.
    static func split(_ uri: String) -> (path: String, query: String) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), String(uri[uri.index(after: mark)...]))
    }
}

/// Bound to its channel's event loop.
@available(*, unavailable)
extension ServerUpgradeHandler: Sendable {}
