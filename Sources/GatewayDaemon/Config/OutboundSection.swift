import GatewayCore
import NIOCore
import WebSocketEngine

/// `outbound_defaults`: what applies to every outbound socket.
public struct OutboundDefaultsSection: Sendable, Decodable {
    public var baseURL: String?
    public var headers: [String: String] = [:]
    public var query: [String: String] = [:]
    public var maxSockets = 1_000
    public var allowedHosts: [String] = []

    enum Keys: String, CodingKey, CaseIterable {
        case headers, query, baseURL = "base_url", maxSockets = "max_sockets", allowedHosts = "allowed_hosts"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        if let base = try c.text(.baseURL) {
            guard (try? WebSocketURL(base)) != nil else {
                throw ConfigError(key: keyPath(decoder.codingPath + [Keys.baseURL]), value: "'\(base)'", expected: "a ws:// or wss:// URL")
            }
            self.baseURL = base
        }
        self.headers = try c.map(.headers) ?? [:]
        self.query = try c.map(.query) ?? [:]
        self.maxSockets = try c.int(.maxSockets, in: 1...100_000) ?? 1_000
        self.allowedHosts = try c.texts(.allowedHosts) ?? []
    }

    var defaults: OutboundDefaults {
        OutboundDefaults(
            baseURL: self.baseURL, headers: self.headers, query: self.query, maxSockets: self.maxSockets,
            allowedHosts: self.allowedHosts)
    }
}

/// One entry of `outbound` (also the body of `POST /v1/outbound`).
public struct OutboundSection: Sendable, Decodable {
    public var socketID: String?
    public var url: String
    public var headers: [String: String] = [:]
    public var query: [String: String] = [:]
    public var pathParameters: [String: String] = [:]
    public var groups: [String] = []
    public var attributes: [String: String] = [:]
    public var subprotocols: [String] = []
    public var reconnect = ReconnectStrategy.none
    public var queue = ReconnectQueuePolicy()
    /// The handler (see ``HandlerCatalog``); `none` by default.
    public var handler = HandlerSection(name: "none")
    public var codec: MessageCodec?
    public var tls: ClientTLSSection?
    public var proxy: ProxySection?
    public var maxRedirects = 0
    public var auth: WebSocketAuthorization?
    public var cookies: [String: String] = [:]
    public var handshakeTimeout = TimeAmount.seconds(10)
    public var idleTimeout: TimeAmount?
    public var idleAction = IdleAction.notify
    public var maxMessageSize: Int?
    public var compression = false

    enum Keys: String, CodingKey, CaseIterable {
        case url, headers, query, groups, attributes, subprotocols, reconnect, queue, handler, codec, preprocessors
        case postprocessors, tls, proxy, auth, cookies, compression
        case socketID = "socket_id", pathParameters = "path_parameters", maxRedirects = "max_redirects"
        case handshakeTimeout = "handshake_timeout", idleTimeout = "idle_timeout", idleAction = "idle_action"
        case maxMessageSize = "max_message_size"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        let here = decoder.codingPath
        if let id = try c.text(.socketID) {
            guard SocketID(validating: id) != nil else {
                throw ConfigError(key: keyPath(here + [Keys.socketID]), value: "'\(id)'", expected: "1 to 128 characters of [a-zA-Z0-9=-]")
            }
            self.socketID = id
        }
        guard let url = try c.text(.url), !url.isEmpty else {
            throw ConfigError(key: keyPath(here + [Keys.url]), value: "nothing", expected: "a ws:// or wss:// URL, or a path relative to outbound_defaults.base_url")
        }
        self.url = url
        self.headers = try c.map(.headers) ?? [:]
        self.query = try c.map(.query) ?? [:]
        self.pathParameters = try c.map(.pathParameters) ?? [:]
        self.groups = try c.texts(.groups) ?? []
        self.attributes = try c.map(.attributes) ?? [:]
        self.subprotocols = try c.texts(.subprotocols) ?? []
        self.reconnect = try c.nested(.reconnect, ReconnectSection.self)?.strategy ?? .none
        self.queue = try c.nested(.queue, QueueSection.self)?.policy ?? ReconnectQueuePolicy()
        self.handler = try c.nested(.handler, OutboundHandlerField.self)?.section ?? HandlerSection(name: "none")
        self.codec = try c.codec(.codec, .preprocessors, .postprocessors)
        self.tls = try c.nested(.tls, ClientTLSSection.self)
        self.proxy = try c.nested(.proxy, ProxySection.self)
        self.maxRedirects = try c.int(.maxRedirects, in: 0...20) ?? 0
        self.auth = try c.nested(.auth, AuthSection.self)?.authorization
        self.cookies = try c.map(.cookies) ?? [:]
        self.handshakeTimeout = try c.duration(.handshakeTimeout) ?? .seconds(10)
        self.idleTimeout = try c.duration(.idleTimeout)
        self.idleAction = try c.choice(.idleAction, IdleAction.self) ?? .notify
        self.maxMessageSize = try c.size(.maxMessageSize)
        self.compression = try c.bool(.compression) ?? false
    }
}

/// `outbound[].reconnect`.
struct ReconnectSection: Decodable {
    enum Strategy: String, CaseIterable { case none, fixed, forever, exponential }

    var strategy: ReconnectStrategy

    enum Keys: String, CodingKey, CaseIterable {
        case strategy, interval, count, growth, jitter
        case initialInterval = "initial_interval", maxInterval = "max_interval", maxRetries = "max_retries"
    }

    /// Waits shorter than this would hammer a service that is down.
    static let shortest = TimeAmount.milliseconds(10)

    init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        for key in [Keys.interval, .initialInterval, .maxInterval] {
            if let value = try c.duration(key), value < Self.shortest {
                throw ConfigError(key: keyPath(decoder.codingPath + [key]), value: "'\(try c.text(key) ?? "")'", expected: "a duration of at least 10ms")
            }
        }
        guard let kind = try c.choice(.strategy, Strategy.self) else {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.strategy]), value: "nothing", expected: "one of none, fixed, forever, exponential")
        }
        switch kind {
        case .none:
            self.strategy = .none
        case .fixed:
            self.strategy = .fixed(interval: try c.duration(.interval) ?? .seconds(1), count: try c.int(.count, in: 1...1_000_000) ?? 10)
        case .forever:
            self.strategy = .forever(interval: try c.duration(.interval) ?? .seconds(1))
        case .exponential:
            let jitter = try c.text(.jitter).map { text -> Double in
                guard let value = Double(text), (0...1).contains(value) else {
                    throw ConfigError(key: keyPath(decoder.codingPath + [Keys.jitter]), value: "'\(text)'", expected: "a number from 0 to 1")
                }
                return value
            }
            self.strategy = .exponential(
                initialInterval: try c.duration(.initialInterval) ?? .milliseconds(500), growth: try c.number(.growth) ?? 2,
                maxInterval: try c.duration(.maxInterval) ?? .seconds(30), maxRetries: try c.int(.maxRetries, in: 1...1_000_000) ?? 10,
                jitter: jitter ?? 0.2)
        }
    }
}

/// `outbound[].queue`.
struct QueueSection: Decodable {
    var policy: ReconnectQueuePolicy

    enum Keys: String, CodingKey, CaseIterable { case size, whenFull = "when_full" }

    init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        self.policy = ReconnectQueuePolicy(
            size: try c.int(.size, in: 0...1_000_000) ?? 1_000,
            whenFull: try c.choice(.whenFull, ReconnectQueuePolicy.WhenFull.self) ?? .rejectNew)
    }
}

/// `outbound[].tls`.
public struct ClientTLSSection: Sendable, Decodable {
    public var caFile: String?
    public var serverName: String?
    public var certificate: String?
    public var privateKey: String?
    /// Skip certificate verification (test servers only).
    public var insecure = false

    enum Keys: String, CodingKey, CaseIterable {
        case certificate, insecure, caFile = "ca_file", serverName = "server_name", privateKey = "private_key"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        self.caFile = try c.text(.caFile)
        self.serverName = try c.text(.serverName)
        self.certificate = try c.text(.certificate)
        self.privateKey = try c.text(.privateKey)
        self.insecure = try c.bool(.insecure) ?? false
        if (self.certificate == nil) != (self.privateKey == nil) {
            let missing = self.certificate == nil ? Keys.certificate : Keys.privateKey
            throw ConfigError(key: keyPath(decoder.codingPath + [missing]), value: "nothing", expected: "both certificate and private_key for a client certificate")
        }
    }
}

/// `outbound[].proxy`: an HTTP CONNECT proxy.
public struct ProxySection: Sendable, Decodable {
    public var proxy: WebSocketProxy

    enum Keys: String, CodingKey, CaseIterable { case url, username, password, noProxy = "no_proxy" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        guard let url = try c.text(.url) else {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.url]), value: "nothing", expected: "the proxy's URL, http://host:port")
        }
        do {
            self.proxy = try WebSocketProxy(url: url, noProxy: try c.texts(.noProxy) ?? [])
        } catch {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.url]), value: "'\(url)'", expected: "an http://[user:password@]host:port URL (\(error))")
        }
        if let username = try c.text(.username) { self.proxy.username = username }
        if let password = try c.text(.password) { self.proxy.password = password }
    }
}

/// `outbound[].auth`: `type: basic` with `username` and `password`, or `type: bearer` with `token`.
struct AuthSection: Decodable {
    enum Kind: String, CaseIterable { case basic, bearer }

    var authorization: WebSocketAuthorization

    enum Keys: String, CodingKey, CaseIterable { case type, username, password, token }

    init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        let here = decoder.codingPath
        switch try c.choice(.type, Kind.self) {
        case .basic?:
            guard let username = try c.text(.username) else {
                throw ConfigError(key: keyPath(here + [Keys.username]), value: "nothing", expected: "a user name for basic authentication")
            }
            self.authorization = .basic(username: username, password: try c.text(.password) ?? "")
        case .bearer?:
            guard let token = try c.text(.token), !token.isEmpty else {
                throw ConfigError(key: keyPath(here + [Keys.token]), value: "nothing", expected: "a token for bearer authentication")
            }
            self.authorization = .bearer(token)
        case nil:
            throw ConfigError(key: keyPath(here + [Keys.type]), value: "nothing", expected: "one of basic, bearer")
        }
    }
}

extension KeyedDecodingContainer {
    /// `codec`, `preprocessors` and `postprocessors` of a route or an outbound socket.
    func codec(_ format: Key, _ pre: Key, _ post: Key) throws -> MessageCodec? {
        let preprocessors = try self.processors(pre)
        let postprocessors = try self.processors(post)
        guard let format = try self.choice(format, MessageCodec.Format.self) else {
            guard preprocessors.isEmpty, postprocessors.isEmpty else {
                throw ConfigError(key: keyPath(self.codingPath + [format]), value: "nothing", expected: "one of string, json, binary when preprocessors or postprocessors are set")
            }
            return nil
        }
        return MessageCodec(format: format, preprocessors: preprocessors, postprocessors: postprocessors)
    }

    private func processors(_ key: Key) throws -> [MessageCodec.Processor] {
        try (self.texts(key) ?? []).enumerated().map { index, name in
            guard let processor = MessageCodec.Processor(rawValue: name) else {
                throw ConfigError(key: keyPath(self.codingPath + [key]) + "[\(index)]", value: "'\(name)'", expected: "one of lines, base64")
            }
            return processor
        }
    }
}


