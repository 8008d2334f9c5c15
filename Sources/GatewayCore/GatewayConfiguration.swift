import Logging
import ServiceLifecycle
import WebSocketEngine

/// Settings of a gateway. Every limit is finite by default.
public struct GatewayConfiguration: Sendable {
    /// The listener: address, TLS, default connection settings, request limits and handshake timeout.
    public var server: WebSocketServerConfiguration
    /// A prefix for every route path (e.g. `/ws`); empty by default.
    public var basePath: String
    /// The routes, matched most specific first.
    public var routes: [GatewayRoute]
    /// The most connections open at once, inbound and outbound (default 10,000); excess upgrades get 503.
    public var maxConnections: Int
    /// The default inbound rate limit (off by default).
    public var rateLimit: RateLimit?
    /// The default idle action (default: close with 1001).
    public var idleAction: IdleAction
    /// Origins allowed by default; `nil` or empty allows any.
    public var allowedOrigins: [String]?
    /// What happens when a connection's outbound queue (`server.connection.outboundQueueSize`) is full.
    public var slowConsumer: SlowConsumerPolicy
    /// The clock of rate limits.
    public var clock: any GatewayClock
    /// Settings for every outbound socket: base URL, default headers and query, the most sockets.
    public var outbound: OutboundDefaults
    /// Where connection opens, closes and policy actions are logged (with the connection's metadata).
    public var logger: Logger
    /// Whether, at which level and for which share of connections `connection opened` and `connection closed`
    /// are logged (default: every connection at `info`).
    public var connectionLog = ConnectionLogPolicy()
    /// The most groups one connection may be in (default 64); more are refused with
    /// ``GatewayError/groupLimit(_:)``, and an upgrade whose route groups exceed it is refused with 400.
    public var maxGroupsPerSocket = 64
    /// The most bytes the outbound queues of all inbound connections may hold together (default 512 MiB; `nil`:
    /// only each connection's `outboundQueueSize` bounds them). Beyond it, a connection with bytes already waiting
    /// is a slow consumer (``slowConsumer``); see ``WebSocketOutboundBudget``.
    public var maxOutboundQueuedBytes: Int? = 512 << 20
    /// The longest group name, in UTF-8 bytes.
    public static let maxGroupNameLength = 256
    /// The `Retry-After` (seconds) of a 503 answer to an upgrade at capacity (gateway or route `max_connections`).
    public static let retryAfterSeconds = 5
    /// Services whose life is the gateway's: ``Gateway/run()`` runs them beside its listener and cancels them
    /// once every connection has ended (a ``BridgeFlow`` belongs here).
    public var services: [any Service] = []

    /// Creates a configuration with the documented defaults.
    public init(
        server: WebSocketServerConfiguration = .init(),
        basePath: String = "",
        routes: [GatewayRoute] = [],
        maxConnections: Int = 10_000,
        rateLimit: RateLimit? = nil,
        idleAction: IdleAction = .close,
        allowedOrigins: [String]? = nil,
        slowConsumer: SlowConsumerPolicy = .close,
        clock: any GatewayClock = SystemGatewayClock(),
        logger: Logger = Logger(label: "wsgate.gateway"),
        outbound: OutboundDefaults = .init()
    ) {
        self.outbound = outbound
        self.logger = logger
        self.server = server
        self.basePath = basePath
        self.routes = routes
        self.maxConnections = maxConnections
        self.rateLimit = rateLimit
        self.idleAction = idleAction
        self.allowedOrigins = allowedOrigins
        self.slowConsumer = slowConsumer
        self.clock = clock
    }
}
