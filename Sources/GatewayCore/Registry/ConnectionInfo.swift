/// Everything the gateway knows about one connection, as returned by `info` and carried by every event.
/// Encodes to JSON with the snake_case keys of the management API.
public struct ConnectionInfo: Sendable, Hashable, Codable {
    /// The connection's id.
    public var socketID: SocketID
    /// Inbound or outbound.
    public var socketType: SocketType
    /// The full URI of the upgrade request (`ws://host/path?query`).
    public var uri: String
    /// The route template that matched (empty for outbound sockets without a route).
    public var route: String
    /// The request path.
    public var path: String
    /// The request headers (repeated headers joined with ", ").
    public var headers: [String: String]
    /// Path and query parameters in one map (path parameters win).
    public var parameters: [String: String]
    /// The query string without `?`.
    public var queryString: String
    /// The negotiated subprotocol.
    public var subprotocol: String?
    /// Whether the connection runs over TLS.
    public var secure: Bool
    /// The peer's address.
    public var remoteAddress: String?
    /// The local address.
    public var localAddress: String?
    /// The subject of the client's TLS certificate (mutual TLS).
    public var clientCertificate: String?
    /// The groups the connection belongs to, sorted.
    public var groups: [String]
    /// Attributes set by the upgrade hook, handlers or operators.
    public var attributes: [String: String]
    /// When the connection opened, in milliseconds since the epoch.
    public var connectedAt: Int64
    /// When data last moved either way, in milliseconds since the epoch.
    public var lastActiveAt: Int64
    /// `open` or `closing`.
    public var state: String
    /// Messages received.
    public var messagesIn: Int
    /// Messages sent.
    public var messagesOut: Int
    /// Payload bytes received.
    public var bytesIn: Int
    /// Payload bytes sent.
    public var bytesOut: Int

    enum CodingKeys: String, CodingKey {
        case socketID = "socket_id"
        case socketType = "socket_type"
        case uri, route, path, headers, parameters
        case queryString = "query_string"
        case subprotocol, secure
        case remoteAddress = "remote_address"
        case localAddress = "local_address"
        case clientCertificate = "client_certificate"
        case groups, attributes
        case connectedAt = "connected_at"
        case lastActiveAt = "last_active_at"
        case state
        case messagesIn = "messages_in"
        case messagesOut = "messages_out"
        case bytesIn = "bytes_in"
        case bytesOut = "bytes_out"
    }
}
