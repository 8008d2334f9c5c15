import NIOHTTP1
import WebSocketEngine

/// An outbound socket: a connection the gateway opens to another WebSocket service. Once open it is a member of
/// the registry like any inbound connection (id, groups, attributes, `send`, `broadcast`, `close`), its incoming
/// messages reach its handler as events, and it reconnects by its ``ReconnectStrategy``.
public struct OutboundSocket: Sendable {
    /// The socket's id (1 to 128 characters of `[a-zA-Z0-9=-]`); a random one when `nil`.
    public var socketID: String?
    /// `ws://` or `wss://` URL, or a path (`/feed`) relative to ``OutboundDefaults/baseURL``. `{name}` placeholders
    /// are filled from ``pathParameters`` (percent-encoded).
    public var url: String
    /// Request headers, over the defaults' headers.
    public var headers: [String: String]
    /// Query parameters, over the defaults' query parameters.
    public var query: [String: String]
    /// Values of the URL's `{name}` placeholders.
    public var pathParameters: [String: String]
    /// Groups the socket joins.
    public var groups: [String]
    /// Attributes the socket starts with.
    public var attributes: [String: String]
    /// Subprotocols to offer, in order of preference.
    public var subprotocols: [String]
    /// How it reconnects (default: never).
    public var reconnect: ReconnectStrategy
    /// What happens to messages sent while it is not connected.
    public var queue: ReconnectQueuePolicy
    /// Its handler (default: one that ignores every event).
    public var handler: any GatewayHandler
    /// How messages are decoded and encoded (default: passed through as they are).
    public var codec: MessageCodec?
    /// The client settings: TLS, proxy, redirects, authorization, cookies, handshake timeout, connection limits
    /// (including `connection.idleTimeout`). Its headers and subprotocols are set from the fields above.
    public var client: WebSocketClientConfiguration
    /// What an idle timeout does (default: notify the handler and keep the socket).
    public var idleAction: IdleAction

    /// Creates an outbound socket description.
    public init(
        socketID: String? = nil,
        url: String,
        headers: [String: String] = [:],
        query: [String: String] = [:],
        pathParameters: [String: String] = [:],
        groups: [String] = [],
        attributes: [String: String] = [:],
        subprotocols: [String] = [],
        reconnect: ReconnectStrategy = .none,
        queue: ReconnectQueuePolicy = .init(),
        handler: any GatewayHandler = IgnoringHandler(),
        codec: MessageCodec? = nil,
        client: WebSocketClientConfiguration = .init(),
        idleAction: IdleAction = .notify
    ) {
        self.socketID = socketID
        self.url = url
        self.headers = headers
        self.query = query
        self.pathParameters = pathParameters
        self.groups = groups
        self.attributes = attributes
        self.subprotocols = subprotocols
        self.reconnect = reconnect
        self.queue = queue
        self.handler = handler
        self.codec = codec
        self.client = client
        self.idleAction = idleAction
    }

    /// The full URL: the base URL applied, placeholders filled and query parameters appended.
    func resolvedURL(defaults: OutboundDefaults) throws(GatewayError) -> String {
        var url = self.url
        if !url.lowercased().hasPrefix("ws://"), !url.lowercased().hasPrefix("wss://") {
            guard let base = defaults.baseURL else {
                throw .invalidOutbound("url '\(url)' is not a ws:// or wss:// URL and no base URL is configured")
            }
            url = (base.hasSuffix("/") ? String(base.dropLast()) : base) + (url.hasPrefix("/") ? url : "/" + url)
        }
        for (name, value) in self.pathParameters {
            url = url.replacing("{\(name)}", with: PercentEncoding.encode(value))
        }
        if let open = url.firstIndex(of: "{"), url[open...].contains("}") {
            throw .invalidOutbound("url '\(url)' has a placeholder without a value in path_parameters")
        }
        let query = defaults.query.merging(self.query) { _, own in own }
        if !query.isEmpty {
            let pairs = query.sorted { $0.key < $1.key }.map { "\(PercentEncoding.encode($0.key))=\(PercentEncoding.encode($0.value))" }
            url += (url.contains("?") ? "&" : "?") + pairs.joined(separator: "&")
        }
        let target: WebSocketURL
        do {
            target = try WebSocketURL(url)
        } catch {
            throw .invalidOutbound("\(error)")
        }
        guard defaults.allows(host: target.host) else {
            throw .invalidOutbound("host \(target.host) is not one of the allowed hosts (\(defaults.allowedHosts.joined(separator: ", ")))")
        }
        return url
    }

    /// The client configuration with the headers and subprotocols applied.
    func clientConfiguration(defaults: OutboundDefaults) -> WebSocketClientConfiguration {
        var client = self.client
        for (name, value) in defaults.headers.merging(self.headers, uniquingKeysWith: { _, own in own }).sorted(by: { $0.key < $1.key }) {
            client.headers.replaceOrAdd(name: name, value: value)
        }
        client.subprotocols = self.subprotocols
        return client
    }
}

/// Settings that apply to every outbound socket of a gateway.
public struct OutboundDefaults: Sendable {
    /// The URL that relative outbound URLs are resolved against (e.g. `wss://upstream.example.com/v1`).
    public var baseURL: String?
    /// Headers sent by every outbound socket (a socket's own headers win).
    public var headers: [String: String]
    /// Query parameters added to every outbound URL (a socket's own win).
    public var query: [String: String]
    /// The most outbound sockets at once (default 1,000); more fail with ``GatewayError/tooManyOutbound(_:)``.
    public var maxSockets: Int
    /// The hosts outbound sockets may connect to: names or IP literals, `*.example.com` for subdomains; empty (the
    /// default) allows any. Guards a management API from being used to reach arbitrary hosts.
    public var allowedHosts: [String]

    /// Creates defaults.
    public init(
        baseURL: String? = nil, headers: [String: String] = [:], query: [String: String] = [:], maxSockets: Int = 1_000,
        allowedHosts: [String] = []
    ) {
        self.baseURL = baseURL
        self.headers = headers
        self.query = query
        self.maxSockets = maxSockets
        self.allowedHosts = allowedHosts
    }

    /// Whether ``allowedHosts`` lets a socket connect to `host`.
    public func allows(host: String) -> Bool {
        guard !self.allowedHosts.isEmpty else { return true }
        let host = host.lowercased()
        return self.allowedHosts.contains { pattern in
            let pattern = pattern.lowercased()
            if pattern.hasPrefix("*.") { return host.hasSuffix(pattern.dropFirst(1)) }
            return host == pattern
        }
    }
}
