import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Logging
import ServiceLifecycle
import WebSocketEngine

/// A WebSocket gateway: routes upgrades to handlers, keeps every live connection in a registry by id and by
/// group, and offers operations on them (``send(_:_:)``, ``broadcast(_:to:excluding:)``, ``close(_:code:reason:)``
/// and more) to handlers and to any other task. It is a swift-service-lifecycle `Service`: on graceful shutdown it
/// stops accepting, closes every connection with 1001 and returns once they are gone (at most the close timeout).
public final class Gateway: Service, Sendable {
    /// The configuration the gateway runs with.
    public let configuration: GatewayConfiguration
    /// Where every connection is: by id, by filter and by group.
    public let directory: any ConnectionDirectory
    /// Routes with the base path applied, most specific first.
    private let routes: [(template: RouteTemplate, route: GatewayRoute)]
    /// Metrics by route template.
    private let metrics: [String: RouteMetrics]
    /// Metrics of outbound sockets.
    let outboundMetrics = RouteMetrics(route: Gateway.outboundRoute)
    /// The key outbound sockets are counted under in the admission counts and metrics.
    static let outboundRoute = "(outbound)"
    private let server = NIOLockedValueBox<WebSocketServer?>(nil)
    /// The tasks serving outbound sockets (``run()`` waits for them).
    let sessions = SessionTasks()
    /// The bound on the outbound queues of all inbound connections together (``GatewayConfiguration/maxOutboundQueuedBytes``).
    public let outboundBudget: WebSocketOutboundBudget?
    /// Connections admitted (reserved at the upgrade, released when they end): in all and per route.
    private let admitted = NIOLockedValueBox<(total: Int, byRoute: [String: Int])>((0, [:]))
    /// Counts and logs refused connections and upgrades.
    private let refusals: ListenerEventReporter
    /// Bounds the log lines said again and again (refusals, slow consumers).
    let logThrottle = LogThrottle()

    /// Creates a gateway; fails when two routes have the same template. `directory` keeps track of the
    /// connections (by default, those of this process only).
    public init(
        configuration: GatewayConfiguration, directory: any ConnectionDirectory = LocalConnectionDirectory()
    ) throws(GatewayConfigurationError) {
        self.configuration = configuration
        self.directory = directory
        self.outboundBudget = configuration.maxOutboundQueuedBytes.map { WebSocketOutboundBudget(limit: $0) }
        self.refusals = ListenerEventReporter(logger: configuration.logger, limits: configuration.server.admission, throttle: self.logThrottle)
        var routes: [(RouteTemplate, GatewayRoute)] = []
        var seen = Set<String>()
        for (index, route) in configuration.routes.enumerated() {
            let full = try RouteTemplate(Self.join(configuration.basePath, route.path.template))
            guard seen.insert(full.segments.map { if case .literal(let l) = $0 { l } else { "{}" } }.joined(separator: "/")).inserted else {
                throw GatewayConfigurationError(key: "routes[\(index)].path", value: "'\(route.path.template)'", expected: "a path no other route has")
            }
            routes.append((full, route))
        }
        self.routes = routes.sorted { RouteTemplate.moreSpecific($0.0, than: $1.0) }
        self.metrics = Dictionary(uniqueKeysWithValues: routes.map { ($0.0.template, RouteMetrics(route: $0.0.template)) })
    }

    private static func join(_ base: String, _ path: String) -> String {
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        return trimmed.isEmpty ? path : (trimmed.hasPrefix("/") ? trimmed : "/" + trimmed) + path
    }

    /// The address the gateway listens on, once started.
    public var localAddress: SocketAddress? { self.server.withLockedValue { $0?.localAddress } }

    /// Starts listening and serving connections (``run()`` does it too, if needed); returns the address.
    @discardableResult
    public func start() async throws -> SocketAddress? {
        if let server = self.server.withLockedValue({ $0 }) { return server.localAddress }
        var configuration = self.configuration.server
        let reporter = self.refusals
        configuration.onEvent = { [onEvent = configuration.onEvent] event in
            reporter.report(event)
            onEvent?(event)
        }
        let server = try await WebSocketServer.bind(
            configuration: configuration,
            decideNow: { request in self.decideNow(request) },
            onUpgrade: { request in await self.upgrade(request) })
        self.server.withLockedValue { $0 = server }
        return server.localAddress
    }

    /// Serves until ``shutdown()``, a graceful-shutdown signal of swift-service-lifecycle, or cancellation; returns
    /// once every connection (inbound and outbound) has ended. The configuration's ``GatewayConfiguration/services``
    /// run beside the listener and are cancelled then.
    public func run() async throws {
        try await self.start()
        guard let server = self.server.withLockedValue({ $0 }) else { return }
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for service in self.configuration.services {
                    group.addTask {
                        do {
                            try await service.run()
                        } catch {
                            self.configuration.logger.error("gateway service failed", metadata: ["service": "\(type(of: service))", "error": "\(error)"])
                        }
                    }
                }
                group.addTask {
                    // Cancelled once the gateway has stopped by other means.
                    guard (try? await gracefulShutdown()) != nil else { return }
                    await self.shutdown()
                }
                await server.run()
                await self.sessions.waitUntilAllEnded()
                group.cancelAll()
            }
        } onCancel: {
            self.closeOutboundSockets()
        }
    }

    /// Cancellation stops the server (its `run()` shuts down); outbound sockets are closed here.
    private func closeOutboundSockets() {
        for connection in self.directory.select(ConnectionFilter(socketType: .outbound)).local {
            connection.startClose(code: .goingAway, reason: "gateway shutting down")
        }
    }

    /// Stops accepting and closes every connection with 1001 (outbound sockets stop reconnecting); ``run()``
    /// returns once they are gone.
    public func shutdown() async {
        self.closeOutboundSockets()
        guard let server = self.server.withLockedValue({ $0 }) else { return }
        await server.shutdown(code: .goingAway, reason: "gateway shutting down")
    }

    // MARK: Upgrades

    /// Decides an upgrade without a task when its route has no upgrade hook (on the connection's event loop);
    /// `nil` leaves it to ``upgrade(_:)``.
    private func decideNow(_ request: WebSocketUpgradeRequest) -> WebSocketUpgradeDecision? {
        let matched = self.match(request.path)
        if let matched, matched.1.upgradeHook != nil { return nil }
        let decision: WebSocketUpgradeDecision
        switch self.check(request, matched) {
        case .failure(let rejection): decision = .reject(rejection)
        case .success(let pending): decision = self.accept(pending, GatewayAcceptance())
        }
        return self.counted(decision, request: request, matched: matched)
    }

    private func upgrade(_ request: WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision {
        let matched = self.match(request.path)
        return self.counted(await self.decide(request, matched), request: request, matched: matched)
    }

    /// Counts and logs a refusal per route and status.
    private func counted(
        _ decision: WebSocketUpgradeDecision, request: WebSocketUpgradeRequest, matched: (RouteTemplate, GatewayRoute, [String: String])?
    ) -> WebSocketUpgradeDecision {
        if case .reject(let rejection) = decision {
            self.refusals.upgradeRefused(
                status: rejection.status, reason: rejection.reason, route: matched?.0.template ?? "", path: request.path,
                address: request.remoteAddress)
        }
        return decision
    }

    private func decide(_ request: WebSocketUpgradeRequest, _ matched: (RouteTemplate, GatewayRoute, [String: String])?) async -> WebSocketUpgradeDecision {
        let pending: PendingUpgrade
        switch self.check(request, matched) {
        case .failure(let rejection): return .reject(rejection)
        case .success(let checked): pending = checked
        }
        guard let hook = pending.route.upgradeHook else { return self.accept(pending, GatewayAcceptance()) }
        let now = GatewayConnection.epochMilliseconds()
        let info = ConnectionInfo(
            socketID: pending.id, socketType: .inbound, uri: pending.uri, route: pending.template, path: request.path,
            headers: GatewayConnection.flatten(request.headers), parameters: pending.parameters, queryString: request.query,
            subprotocol: pending.chosen, compression: nil, secure: request.isSecure,
            remoteAddress: request.remoteAddress.map(GatewayConnection.describe),
            localAddress: request.localAddress.map(GatewayConnection.describe),
            clientCertificate: request.clientCertificateSubject, groups: pending.routeGroups.sorted(), attributes: [:],
            connectedAt: now, lastActiveAt: now, state: "open", messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0)
        let hookRequest = GatewayUpgradeRequest(
            request: request, route: pending.template, pathParameters: pending.pathParameters,
            queryParameters: request.queryParameters, subprotocol: pending.chosen, info: info)
        switch await hook(hookRequest) {
        case .accept(let accepted):
            return self.accept(pending, accepted)
        case .reject(let status, let headers, let body):
            self.release(route: pending.template)
            return .reject(.init(status: status, reason: body, headers: headers))
        }
    }

    /// An upgrade that passed the gateway's own checks and holds a connection slot.
    private struct PendingUpgrade {
        var template: String
        var route: GatewayRoute
        var request: WebSocketUpgradeRequest
        var pathParameters, parameters: [String: String]
        var chosen: String?
        var id: SocketID
        var uri: String
        var routeGroups: [String]
    }

    /// The gateway's checks (route, origin, capacity); on success the connection's slot is reserved.
    private func check(
        _ request: WebSocketUpgradeRequest, _ matched: (RouteTemplate, GatewayRoute, [String: String])?
    ) -> Result<PendingUpgrade, WebSocketHandshakeRejection> {
        guard let (template, route, pathParameters) = matched else {
            return .failure(.init(status: .notFound, reason: "no route for \(request.path)"))
        }
        let origins = route.allowedOrigins ?? self.configuration.allowedOrigins ?? []
        let offered = request.headers["origin"]
        if !origins.isEmpty, offered.count > 1 {
            return .failure(.init(status: .forbidden, reason: "more than one Origin header"))
        }
        if !origins.isEmpty, let origin = offered.first, !origins.contains(origin) {
            return .failure(.init(status: .forbidden, reason: "origin \(origin) is not allowed"))
        }
        var parameters = request.queryParameters
        parameters.merge(pathParameters) { _, path in path }
        let routeGroups = route.groups.map { RouteTemplate.expand($0, with: parameters) }
        for (name, value) in parameters.sorted(by: { $0.key < $1.key })
        where route.groups.contains(where: { $0.contains("{\(name)}") }) && !Self.isSafeGroupPart(value) {
            return .failure(.init(status: .badRequest, reason: "parameter \(name) has a control or bidi character or a '..' segment"))
        }
        if let refusal = self.groupRefusal(routeGroups, joining: []) {
            return .failure(.init(status: .badRequest, reason: refusal))
        }
        if let refusal = self.admit(route: template.template, limit: route.maxConnections) {
            return .failure(refusal)
        }
        let scheme = request.isSecure ? "wss" : "ws"
        let host = request.headers["host"].first ?? "localhost"
        return .success(
            PendingUpgrade(
                template: template.template, route: route, request: request, pathParameters: pathParameters,
                parameters: parameters, chosen: request.firstOffered(of: route.subprotocols), id: SocketID.random(),
                uri: "\(scheme)://\(host)\(request.head.uri)",
                routeGroups: routeGroups))
    }

    /// The accepted upgrade: the connection is registered when installed and then served.
    private func accept(_ pending: PendingUpgrade, _ acceptance: GatewayAcceptance) -> WebSocketUpgradeDecision {
        let request = pending.request
        let route = pending.route
        var connection = route.connection ?? self.configuration.server.connection
        // A full outbound queue is handled by the gateway's slow-consumer policy, never by waiting.
        connection.outboundBackpressure = .fail
        connection.outboundBudget = self.outboundBudget
        connection.trafficObserver = self.metrics[pending.template]
        let setup = ConnectionSetup(
            id: pending.id, route: pending.template, uri: pending.uri, path: request.path,
            parameters: pending.parameters, queryString: request.query, clientCertificate: request.clientCertificateSubject,
            attributes: acceptance.attributes, groups: pending.routeGroups + acceptance.groups,
            maxMessageSize: connection.maxMessageSize,
            handler: route.handler, rateLimit: route.rateLimit ?? self.configuration.rateLimit,
            idleAction: route.idleAction ?? self.configuration.idleAction, codec: route.codec,
            slowConsumer: route.slowConsumer ?? self.configuration.slowConsumer)
        let registered = NIOLockedValueBox<GatewayConnection?>(nil)
        return .accept(
            WebSocketAcceptance(
                subprotocol: acceptance.subprotocol ?? pending.chosen,
                omitSubprotocol: acceptance.subprotocol == nil && pending.chosen == nil,
                headers: acceptance.headers, connection: connection,
                onInstalled: { socket in registered.withLockedValue { $0 = self.register(socket, setup: setup) } }
            ) { _ in
                guard let connection = registered.withLockedValue({ $0 }) else {
                    self.release(route: setup.route)
                    return
                }
                await self.serve(connection, setup: setup)
            })
    }

    private func match(_ path: String) -> (RouteTemplate, GatewayRoute, [String: String])? {
        for (template, route) in self.routes {
            if let parameters = template.match(path) { return (template, route, parameters) }
        }
        return nil
    }

    /// Whether a parameter's value may become part of a group name: no control or format character (Unicode
    /// Cc, Cf: the bidi controls U+202A–U+202E and U+2066–U+2069 are Cf) and no `..` path segment.
    static func isSafeGroupPart(_ value: String) -> Bool {
        let unsafe = value.unicodeScalars.contains { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }
        return !unsafe && !value.split(whereSeparator: { $0 == "/" || $0 == "\\" }).contains("..")
    }

    /// Why a connection in `current` groups may not join `groups` (a name too long, too many groups), or `nil`.
    func groupRefusal(_ groups: [String], joining current: Set<String>) -> String? {
        if let long = groups.first(where: { $0.utf8.count > GatewayConfiguration.maxGroupNameLength }) {
            return "group name of \(long.utf8.count) bytes exceeds the limit of \(GatewayConfiguration.maxGroupNameLength) bytes"
        }
        let count = current.union(groups).count
        if count > self.configuration.maxGroupsPerSocket {
            return "\(count) groups exceed the limit of \(self.configuration.maxGroupsPerSocket) groups per socket (limits.max_groups_per_socket)"
        }
        return nil
    }

    /// Reserves a connection slot, or says why not (503 with `Retry-After`).
    func admit(route: String, limit: Int?) -> WebSocketHandshakeRejection? {
        let retry: HTTPHeaders = ["Retry-After": "\(GatewayConfiguration.retryAfterSeconds)"]
        return self.admitted.withLockedValue { admitted in
            if admitted.total >= self.configuration.maxConnections {
                return .init(status: .serviceUnavailable, reason: "gateway at capacity (\(self.configuration.maxConnections) connections)", headers: retry)
            }
            if let limit, admitted.byRoute[route, default: 0] >= limit {
                return .init(status: .serviceUnavailable, reason: "route \(route) at capacity (\(limit) connections)", headers: retry)
            }
            admitted.total += 1
            admitted.byRoute[route, default: 0] += 1
            return nil
        }
    }

    func release(route: String) {
        self.admitted.withLockedValue { admitted in
            admitted.total -= 1
            admitted.byRoute[route, default: 1] -= 1
        }
    }

    /// What an accepted upgrade hands to the connection's task.
    private struct ConnectionSetup: Sendable {
        var id: SocketID
        var route, uri, path: String
        var parameters: [String: String]
        var queryString: String
        var clientCertificate: String?
        var attributes: [String: String]
        var groups: [String]
        var maxMessageSize: Int
        var handler: any GatewayHandler
        var rateLimit: RateLimit?
        var idleAction: IdleAction
        var codec: MessageCodec?
        var slowConsumer: SlowConsumerPolicy
    }

    /// Puts a new connection in the registry and its groups (before its client hears of the upgrade).
    private func register(_ socket: WebSocket, setup: ConnectionSetup) -> GatewayConnection? {
        let connection = GatewayConnection(
            id: setup.id, type: .inbound, socket: socket, route: setup.route, uri: setup.uri, path: setup.path,
            headers: socket.request.headers,
            parameters: setup.parameters, queryString: setup.queryString, clientCertificate: setup.clientCertificate,
            attributes: setup.attributes, maxMessageSize: setup.maxMessageSize, slowConsumer: setup.slowConsumer,
            codec: setup.codec, metrics: self.metrics[setup.route] ?? RouteMetrics(route: setup.route))
        guard self.directory.register(connection) else { return nil }
        connection.metrics.accepted()
        self.configuration.connectionLog.opened(connection, logger: self.configuration.logger)
        for group in setup.groups { self.directory.subscribe(connection, to: group) }
        return connection
    }

    /// One connection's life after registration: run the handler, close, then unregister.
    private func serve(_ connection: GatewayConnection, setup: ConnectionSetup) async {
        var events = GatewayEvents(
            connection: connection, rateLimit: setup.rateLimit, idleAction: setup.idleAction, clock: self.configuration.clock)
        let route = setup.route
        events.finish = {
            await self.finishServing(connection)
            self.release(route: route)
        }
        await self.serve(connection, handler: setup.handler, events: events)
    }

    /// Runs a connection's handler to the end, then ``finishServing(_:)`` (inbound and outbound alike). A handler
    /// whose callbacks are driven without a task returns at once; the gateway finishes after its close event.
    func serve(_ connection: GatewayConnection, handler: any GatewayHandler, events: GatewayEvents) async {
        await handler.serve(GatewayContext(connection: connection, gateway: self), events: events)
        if connection.socket?.deliveryFinished != nil { return }
        if let finish = events.finish { await finish() } else { await self.finishServing(connection) }
    }

    /// Closes the connection if the handler returned early, waits for the closing handshake and unregisters it.
    @inline(never)
    func finishServing(_ connection: GatewayConnection) async {
        if !connection.isClosing || (connection.socket?.isOpen ?? false) { connection.startClose(code: .normalClosure) }
        self.unregister(connection, info: await connection.socket?.closeInfo)
    }

    /// Takes a closed connection out of the registry, counts and logs its close. Not inlined into `serve`, whose
    /// frame lives as long as the connection.
    @inline(never)
    private func unregister(_ connection: GatewayConnection, info: WebSocketCloseInfo?) {
        self.directory.unregister(connection)
        connection.metrics.closed(code: info?.code.rawValue ?? WebSocketCloseCode.abnormalClosure.rawValue)
        self.configuration.connectionLog.closed(connection, info: info, logger: self.configuration.logger)
    }
}
