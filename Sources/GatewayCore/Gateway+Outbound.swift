import Logging
import NIOPosix
import WebSocketEngine

extension Gateway {
    /// Opens an outbound socket and registers it (see ``OutboundSocket``).
    ///
    /// The call returns after the first connect attempt. When it succeeds the socket is open; when it fails and the
    /// strategy retries, the socket is registered in state `connecting` and keeps trying (messages sent to it are
    /// queued); when it fails and the strategy never retries, the socket is not registered and the call throws
    /// ``GatewayError/connectFailed(_:reason:)``.
    ///
    /// - Throws: ``GatewayError`` `invalid_socket_id`, `socket_id_in_use`, `invalid_outbound`, `too_many_outbound`
    ///   or `connect_failed`.
    @discardableResult
    public func openOutbound(_ socket: OutboundSocket) async throws(GatewayError) -> SocketID {
        let id: SocketID
        if let text = socket.socketID {
            guard let valid = SocketID(validating: text) else { throw .invalidSocketID(text) }
            id = valid
        } else {
            id = .random()
        }
        let url = try socket.resolvedURL(defaults: self.configuration.outbound)
        var client = socket.clientConfiguration(defaults: self.configuration.outbound)
        client.connection.trafficObserver = self.outboundMetrics
        if let refusal = self.admit(route: Self.outboundRoute, limit: self.configuration.outbound.maxSockets) {
            throw .tooManyOutbound(refusal.reason.replacing("route \(Self.outboundRoute)", with: "outbound sockets"))
        }
        let link = OutboundLink(id: id, url: url, client: client, strategy: socket.reconnect, queue: socket.queue, logger: self.configuration.logger)
        let target = try? WebSocketURL(url)
        let requestTarget = target?.requestTarget ?? "/"
        let queryStart = requestTarget.firstIndex(of: "?")
        let connection = GatewayConnection(
            id: id, type: .outbound, socket: nil, link: link, route: "", uri: url,
            path: queryStart.map { String(requestTarget[..<$0]) } ?? requestTarget,
            headers: client.headers, parameters: socket.pathParameters,
            queryString: queryStart.map { String(requestTarget[requestTarget.index(after: $0)...]) } ?? "",
            clientCertificate: nil, attributes: socket.attributes, maxMessageSize: client.connection.maxMessageSize,
            slowConsumer: self.configuration.slowConsumer, codec: socket.codec, reservedFor: socket.handler.exclusiveSender,
            metrics: self.outboundMetrics)
        guard self.directory.register(connection) else {
            self.release(route: Self.outboundRoute)
            throw .socketIDInUse(id.rawValue)
        }
        for group in socket.groups { self.directory.subscribe(connection, to: group) }
        var firstFailure: String?
        switch await link.connect(attempt: 1) {
        case .connected(let webSocket):
            if !link.attach(webSocket) { firstFailure = "closed while connecting" }
        case .failed(let reason):
            guard socket.reconnect.retries else {
                link.stop(failing: .connectFailed(url, reason: reason))
                self.directory.unregister(connection)
                self.release(route: Self.outboundRoute)
                throw .connectFailed(url, reason: reason)
            }
            firstFailure = reason
        }
        connection.metrics.accepted()
        var metadata = connection.logMetadata
        metadata["url"] = "\(url)"
        if let firstFailure {
            metadata["error"] = "\(firstFailure)"
            self.configuration.logger.warning("outbound socket registered; first connect attempt failed, retrying", metadata: metadata)
        } else {
            self.configuration.logger.info("outbound socket opened", metadata: metadata)
        }
        let events = GatewayEvents(
            connection: connection, rateLimit: nil, idleAction: socket.idleAction, clock: self.configuration.clock,
            firstFailure: firstFailure)
        self.sessions.start(on: link.socket?.eventLoop ?? MultiThreadedEventLoopGroup.singleton.any()) {
            await self.serve(connection, handler: socket.handler, events: events)
            self.release(route: Self.outboundRoute)
        }
        return id
    }
}
