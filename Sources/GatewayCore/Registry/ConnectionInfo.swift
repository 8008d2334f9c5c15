import WebSocketEngine

/// Everything the gateway knows about one connection, as returned by `info` and carried by every event.
/// Encodes to JSON with the snake_case keys of the management API; every field is present, `null` where empty.
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
    /// The negotiated permessage-deflate parameters (the server's answer), `nil` without compression.
    public var compression: CompressionInfo?
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
    /// Bytes read from the network since the handshake (frames as they arrived: headers, control frames and
    /// compressed payloads).
    public var wireBytesIn: Int = 0
    /// Bytes written to the network since the handshake.
    public var wireBytesOut: Int = 0

    enum CodingKeys: String, CodingKey {
        case socketID = "socket_id"
        case socketType = "socket_type"
        case uri, route, path, headers, parameters
        case queryString = "query_string"
        case subprotocol, compression, secure
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
        case wireBytesIn = "wire_bytes_in"
        case wireBytesOut = "wire_bytes_out"
    }

    /// Encodes every field, writing `null` for the empty optional ones (a client sees the whole record's shape).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.socketID, forKey: .socketID)
        try container.encode(self.socketType, forKey: .socketType)
        try container.encode(self.uri, forKey: .uri)
        try container.encode(self.route, forKey: .route)
        try container.encode(self.path, forKey: .path)
        try container.encode(self.headers, forKey: .headers)
        try container.encode(self.parameters, forKey: .parameters)
        try container.encode(self.queryString, forKey: .queryString)
        try container.encode(self.subprotocol, forKey: .subprotocol)
        try container.encode(self.compression, forKey: .compression)
        try container.encode(self.secure, forKey: .secure)
        try container.encode(self.remoteAddress, forKey: .remoteAddress)
        try container.encode(self.localAddress, forKey: .localAddress)
        try container.encode(self.clientCertificate, forKey: .clientCertificate)
        try container.encode(self.groups, forKey: .groups)
        try container.encode(self.attributes, forKey: .attributes)
        try container.encode(self.connectedAt, forKey: .connectedAt)
        try container.encode(self.lastActiveAt, forKey: .lastActiveAt)
        try container.encode(self.state, forKey: .state)
        try container.encode(self.messagesIn, forKey: .messagesIn)
        try container.encode(self.messagesOut, forKey: .messagesOut)
        try container.encode(self.bytesIn, forKey: .bytesIn)
        try container.encode(self.bytesOut, forKey: .bytesOut)
        try container.encode(self.wireBytesIn, forKey: .wireBytesIn)
        try container.encode(self.wireBytesOut, forKey: .wireBytesOut)
    }
}

/// The permessage-deflate parameters a connection negotiated (RFC 7692 §7.1), with the defaults filled in.
public struct CompressionInfo: Sendable, Hashable, Codable {
    /// Always `permessage-deflate`.
    public var extensionName: String
    /// The `Sec-WebSocket-Extensions` value the server answered.
    public var negotiated: String
    /// The server resets its compression context after every message.
    public var serverNoContextTakeover: Bool
    /// The client resets its compression context after every message.
    public var clientNoContextTakeover: Bool
    /// The server's window (15 unless negotiated lower).
    public var serverMaxWindowBits: Int
    /// The client's window (15 unless negotiated lower).
    public var clientMaxWindowBits: Int

    /// The record of negotiated parameters.
    public init(_ parameters: PerMessageDeflateParameters) {
        self.extensionName = "permessage-deflate"
        self.negotiated = parameters.headerValue
        self.serverNoContextTakeover = parameters.serverNoContextTakeover
        self.clientNoContextTakeover = parameters.clientNoContextTakeover
        self.serverMaxWindowBits = parameters.serverMaxWindowBits ?? 15
        self.clientMaxWindowBits = parameters.clientMaxWindowBits ?? 15
    }

    enum CodingKeys: String, CodingKey {
        case extensionName = "extension"
        case negotiated
        case serverNoContextTakeover = "server_no_context_takeover"
        case clientNoContextTakeover = "client_no_context_takeover"
        case serverMaxWindowBits = "server_max_window_bits"
        case clientMaxWindowBits = "client_max_window_bits"
    }
}
