import NIOCore
import NIOHTTP1
import WebSocketEngine

/// One WebSocket endpoint of the gateway.
public struct GatewayRoute: Sendable {
    /// The path template, e.g. `/devices/{id}` (the gateway's base path is put in front).
    public var path: RouteTemplate
    /// Serves the route's connections.
    public var handler: any GatewayHandler
    /// Subprotocols in this route's order of preference.
    public var subprotocols: [String]
    /// Groups every connection joins on open; `{name}` is replaced by the path parameter, e.g. `room:{room}`.
    public var groups: [String]
    /// Connection settings (limits, keepalive, idle timeout, compression); `nil` uses the gateway's.
    public var connection: WebSocketConfiguration?
    /// Inbound rate limit per connection; `nil` uses the gateway's (off unless set).
    public var rateLimit: RateLimit?
    /// What happens when a connection of this route is idle for its idle timeout; `nil` uses the gateway's.
    public var idleAction: IdleAction?
    /// Origins allowed to connect (exact `Origin` values); `nil` uses the gateway's list, empty allows any.
    public var allowedOrigins: [String]?
    /// The most connections this route holds at once; `nil`: only the gateway-wide limit applies.
    public var maxConnections: Int?
    /// Decides each upgrade (authentication, subprotocol, attributes, groups); `nil` accepts every request.
    public var upgradeHook: (@Sendable (GatewayUpgradeRequest) async -> GatewayUpgradeDecision)?
    /// How the route's messages are decoded and encoded; `nil` passes them through.
    public var codec: MessageCodec?
    /// What happens to a connection of this route whose outbound queue is full; `nil` uses the gateway's.
    public var slowConsumer: SlowConsumerPolicy?

    /// Creates a route.
    public init(
        path: String,
        handler: any GatewayHandler,
        subprotocols: [String] = [],
        groups: [String] = [],
        connection: WebSocketConfiguration? = nil,
        rateLimit: RateLimit? = nil,
        idleAction: IdleAction? = nil,
        allowedOrigins: [String]? = nil,
        maxConnections: Int? = nil,
        upgradeHook: (@Sendable (GatewayUpgradeRequest) async -> GatewayUpgradeDecision)? = nil,
        codec: MessageCodec? = nil,
        slowConsumer: SlowConsumerPolicy? = nil
    ) throws(GatewayConfigurationError) {
        self.codec = codec
        self.slowConsumer = slowConsumer
        self.path = try RouteTemplate(path)
        self.handler = handler
        self.subprotocols = subprotocols
        self.groups = groups
        self.connection = connection
        self.rateLimit = rateLimit
        self.idleAction = idleAction
        self.allowedOrigins = allowedOrigins
        self.maxConnections = maxConnections
        self.upgradeHook = upgradeHook
    }
}

/// A request to open a connection on a route, as an upgrade hook sees it.
public struct GatewayUpgradeRequest: Sendable {
    /// The engine's view of the request (head, path, query, addresses, TLS client certificate subject).
    public var request: WebSocketUpgradeRequest
    /// The route template that matched.
    public var route: String
    /// The path parameters.
    public var pathParameters: [String: String]
    /// The query parameters.
    public var queryParameters: [String: String]
    /// The subprotocol the route would choose.
    public var subprotocol: String?
    /// The connection's info record as it will be once open (its `socket_id` is already assigned).
    public var info: ConnectionInfo

    /// The request headers.
    public var headers: HTTPHeaders { self.request.headers }
    /// The path.
    public var path: String { self.request.path }
    /// The peer's address.
    public var remoteAddress: SocketAddress? { self.request.remoteAddress }
    /// The subject of the client's TLS certificate, when it presented one.
    public var clientCertificateSubject: String? { self.request.clientCertificateSubject }
}

/// An upgrade hook's answer.
public enum GatewayUpgradeDecision: Sendable {
    /// Open the connection, with these adjustments.
    case accept(GatewayAcceptance = .init())
    /// Refuse with a status, headers and a body.
    case reject(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: String)
}

/// How an upgrade hook adjusts an accepted connection.
public struct GatewayAcceptance: Sendable {
    /// The subprotocol to answer with (`nil`: the route's choice).
    public var subprotocol: String?
    /// Extra 101 response headers.
    public var headers: HTTPHeaders
    /// Attributes to attach to the connection.
    public var attributes: [String: String]
    /// Groups to join on open, besides the route's.
    public var groups: [String]

    /// Creates an acceptance.
    public init(subprotocol: String? = nil, headers: HTTPHeaders = [:], attributes: [String: String] = [:], groups: [String] = []) {
        self.subprotocol = subprotocol
        self.headers = headers
        self.attributes = attributes
        self.groups = groups
    }
}

/// A configuration value that is not acceptable, named by its key.
public struct GatewayConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The configuration key (e.g. `routes[2].path`).
    public var key: String
    /// The value found (quoted), or a description of what was there.
    public var value: String
    /// What was expected instead.
    public var expected: String

    /// Creates an error.
    public init(key: String, value: String, expected: String) {
        self.key = key
        self.value = value
        self.expected = expected
    }

    public var description: String {
        "config error at \(self.key.isEmpty ? "the top level" : self.key): got \(self.value), expected \(self.expected)"
    }
}
