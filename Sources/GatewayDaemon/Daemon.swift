import AsyncHTTPClient
import Foundation
import GatewayCluster
import GatewayCore
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle
import UnixSignals
import WebSocketEngine

/// The `wsgate` daemon: the gateway from a configuration file, its management API, webhooks and metrics.
public struct Daemon: Sendable {
    /// The configuration it runs.
    public var configuration: DaemonConfiguration

    /// Creates a daemon.
    public init(configuration: DaemonConfiguration) {
        self.configuration = configuration
    }

    /// The OpenAPI document of the management API.
    public static var openAPIDocument: String {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { return "openapi: 3.0.3\n" }
        return text
    }

    /// The gateway's configuration, with its routes' handlers built from the handler catalog.
    func gatewayConfiguration(handlers: HandlerServices, logger: Logger) throws -> GatewayConfiguration {
        let file = self.configuration
        var connection = WebSocketConfiguration()
        connection.idleTimeout = LimitsSection.defaultIdleTimeout
        file.limits.apply(to: &connection)
        if let keepalive = file.keepalive {
            connection.keepalive = .init(interval: keepalive.pingInterval, timeout: keepalive.pongTimeout)
        }
        if file.compression.enabled {
            connection.compression = PerMessageDeflateConfiguration(
                minimumMessageSize: file.compression.minimumSize, compressionLevel: file.compression.level)
        }
        var server = WebSocketServerConfiguration(host: file.listen.host, port: file.listen.port, connection: connection)
        if let handshake = file.limits.handshakeTimeout { server.handshakeTimeout = handshake }
        server.admission = file.limits.admission
        if let tls = file.tls {
            do {
                server.tls = try .webSocketServer(
                    certificateChainFile: tls.certificate, privateKeyFile: tls.privateKey, clientCAFile: tls.clientCA,
                    requireClientCertificate: tls.requireClientCertificate)
            } catch {
                throw ConfigError(key: "tls", value: "files that could not be loaded (\(error))", expected: "a readable PEM certificate chain and key")
            }
        }
        var routes: [GatewayRoute] = []
        for (index, section) in file.routes.enumerated() {
            var routeConnection = connection
            section.limits.apply(to: &routeConnection)
            let built = try handlers.build(section.handler, role: .route, key: "routes[\(index)]", owner: section.path)
            do {
                routes.append(try GatewayRoute(
                    path: section.path, handler: built.handler, subprotocols: section.subprotocols, groups: section.groups,
                    connection: routeConnection, rateLimit: section.rateLimit, idleAction: section.limits.idleAction,
                    allowedOrigins: section.allowedOrigins, maxConnections: section.limits.maxConnections, upgradeHook: built.upgradeHook,
                    codec: section.codec, slowConsumer: section.limits.slowConsumer))
            } catch {
                throw ConfigError(key: "routes[\(index)].path", value: "'\(section.path)'", expected: error.expected)
            }
        }
        var configuration = GatewayConfiguration(
            server: server, basePath: file.basePath, routes: routes,
            maxConnections: file.limits.maxConnections ?? 10_000, rateLimit: file.rateLimit,
            idleAction: file.limits.idleAction ?? .close,
            allowedOrigins: file.allowedOrigins.isEmpty ? nil : file.allowedOrigins,
            slowConsumer: file.limits.slowConsumer ?? .close, logger: logger, outbound: file.outboundDefaults.defaults)
        configuration.services = handlers.bridges.keys.sorted().compactMap { handlers.bridges[$0] }
        configuration.services.append(EventLoopLagProbe())
        if let groups = file.limits.maxGroupsPerSocket { configuration.maxGroupsPerSocket = groups }
        if let total = file.limits.maxOutboundQueuedTotal { configuration.maxOutboundQueuedBytes = total }
        configuration.connectionLog = file.log.connectionLog
        return configuration
    }

    /// Opens the file's outbound sockets, concurrently; a socket whose first attempt fails without retries is
    /// logged and left out.
    private static func openOutbound(_ sections: [OutboundSection], gateway: Gateway, factory: OutboundFactory, logger: Logger) async throws {
        let sockets = try sections.enumerated().map { index, section in try factory.socket(section, key: "outbound[\(index)]") }
        await withTaskGroup(of: Void.self) { group in
            for socket in sockets {
                group.addTask {
                    do {
                        try await gateway.openOutbound(socket)
                    } catch {
                        logger.error("outbound socket not opened", metadata: ["socket_id": "\(socket.socketID ?? "-")", "url": "\(socket.url)", "error": "\(error)"])
                    }
                }
            }
        }
    }

    /// The release this binary was built from (bumped with each release), shown by `wsgate --version` and in
    /// `GET /v1/nodes`.
    public static let version = "0.9.0"

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully (1001 to every connection).
    public func run(logger: Logger, metrics: PrometheusCollectorRegistry, onReady: @escaping @Sendable (String) -> Void = { print($0) }) async throws {
        // A refused or reset connection fails a webhook attempt at once: the client's own retries, with backoff
        // until the request's deadline, would make every attempt at a dead backend wait its whole timeout.
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroup: .singletonMultiThreadedEventLoopGroup, configuration: httpConfiguration)
        for warning in self.configuration.warnings { logger.warning("\(warning)") }
        do {
            let handlers = HandlerServices(
                http: http, logger: logger, bridges: OutboundFactory.bridges(of: self.configuration),
                outboundDefaults: self.configuration.outboundDefaults.defaults,
                handshakeTimeout: self.configuration.limits.handshakeTimeout ?? WebSocketServerConfiguration().handshakeTimeout)
            let gateway = try Gateway(configuration: try self.gatewayConfiguration(handlers: handlers, logger: logger))
            DescriptorLimit.check(connections: gateway.configuration.maxConnections, logger: logger)
            let factory = OutboundFactory(handlers: handlers, connection: gateway.configuration.server.connection)
            let address = try await gateway.start()
            try await Self.openOutbound(self.configuration.outbound, gateway: gateway, factory: factory, logger: logger)
            let cluster = self.configuration.cluster.map { section in
                ClusterNode(settings: section.settings, version: Self.version, logger: logger) { gateway.connectionCount }
            }
            let startedAt = Int64((Date().timeIntervalSince1970 * 1000).rounded())
            let token = self.configuration.admin.resolvedToken()
            let adminPort = NIOLockedValueBox(self.configuration.admin.listen.port)
            let admin = Application(
                router: AdminAPI.router(
                    gateway: gateway, token: token, port: adminPort,
                    metrics: { metrics.emitToString() }, openAPI: Self.openAPIDocument,
                    bodyLimit: AdminBodyLimit(
                        bytes: self.configuration.admin.maxBodySize ?? gateway.configuration.server.connection.maxMessageSize * 2 + 64 * 1024,
                        timeout: .nanoseconds(self.configuration.admin.requestTimeout.nanoseconds)),
                    openOutbound: { section in
                        guard !self.configuration.outboundDefaults.allowedHosts.isEmpty else {
                            throw AdminError(
                                status: .forbidden, type: "outbound_not_allowed",
                                message: "the API opens no outbound sockets until outbound_defaults.allowed_hosts lists the hosts they may reach")
                        }
                        let socket: OutboundSocket
                        do {
                            socket = try factory.socket(section, key: "body")
                        } catch let error as ConfigError {
                            throw AdminError.badRequest("\(error)")
                        }
                        return try await gateway.openOutbound(socket)
                    },
                    nodes: {
                        if let cluster { return try await cluster.nodes() }
                        // Alone, the node is the whole cluster.
                        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
                        return [NodeInfo(nodeID: ClusterSection.defaultNodeID, state: .up, version: Self.version, connections: gateway.connectionCount, startedAt: startedAt, lastHeartbeat: now)]
                    }),
                server: .http1(configuration: .init(idleTimeout: self.configuration.admin.idleTimeout)),
                configuration: .init(
                    address: .hostname(self.configuration.admin.listen.host, port: self.configuration.admin.listen.port),
                    serverName: "wsgate"),
                onServerRunning: { channel in
                    adminPort.withLockedValue { $0 = channel.localAddress?.port ?? $0 }
                    let scheme = self.configuration.tls == nil ? "ws" : "wss"
                    var lines = ["wsgate: WebSocket listener on \(scheme)://\(Self.describe(address))"]
                    for route in self.configuration.routes {
                        lines.append("  \(self.configuration.basePath)\(route.path) -> \(route.handler.name)\(route.groups.isEmpty ? "" : " groups \(route.groups.joined(separator: ", "))")")
                    }
                    for socket in self.configuration.outbound {
                        let state = (try? gateway.info(socket.socketID ?? ""))?.state ?? "not opened"
                        lines.append("  outbound \(socket.socketID ?? "-") -> \(socket.url) (\(state))")
                    }
                    if let cluster {
                        lines.append("wsgate: cluster node \(cluster.settings.nodeID) on \(cluster.settings.displayURL)")
                    }
                    lines.append("wsgate: management API on http://\(Self.describe(channel.localAddress)) (\(Self.describe(token: token, configured: self.configuration.admin.token)))")
                    onReady(lines.joined(separator: "\n"))
                },
                logger: logger)
            let group = ServiceGroup(
                configuration: .init(
                    // Shut down in reverse order: the management API first, then the gateway (which drains its
                    // connections), then the cluster membership (the node leaves once it serves nothing).
                    services: (cluster.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                        + [.init(service: gateway), .init(service: admin)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    /// The banner's word on the token: a generated one (`admin.token: auto`) is printed, as Jupyter does, since no
    /// one else knows it.
    private static func describe(token: String?, configured: String?) -> String {
        guard let token else { return "no token, loopback only" }
        return configured == AdminSection.autoToken ? "bearer token \(token)" : "bearer token required"
    }

    private static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "?" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
