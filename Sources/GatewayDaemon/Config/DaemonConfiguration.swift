import GatewayCore
import NIOCore
import WebSocketEngine

/// The daemon's configuration file, key by key (every key is documented in docs/configuration.md).
public struct DaemonConfiguration: Sendable, Decodable {
    /// `listen`: the WebSocket listener (default 127.0.0.1:8080).
    public var listen = ListenAddress(host: "127.0.0.1", port: 8080)
    /// `base_path`: a prefix for every route path.
    public var basePath = ""
    /// `tls`: serve wss.
    public var tls: TLSSection?
    /// `admin`: the management API listener.
    public var admin = AdminSection()
    /// `limits`: connection limits and timeouts.
    public var limits = LimitsSection()
    /// `keepalive`: server pings (on by default; `keepalive: off` turns them off).
    public var keepalive: KeepaliveSection? = KeepaliveSection()
    /// `compression`: permessage-deflate.
    public var compression = CompressionSection()
    /// `rate_limit`: default inbound rate limit per connection.
    public var rateLimit: RateLimit?
    /// `allowed_origins`: default allowed `Origin` values (empty: any).
    public var allowedOrigins: [String] = []
    /// `log`: level and format.
    public var log = LogSection()
    /// `cluster`: join other nodes through PostgreSQL (none: the node runs alone).
    public var cluster: ClusterSection?
    /// `routes`: the WebSocket endpoints.
    public var routes: [RouteSection] = []
    /// `outbound_defaults`: base URL, headers and query for every outbound socket, and their cap.
    public var outboundDefaults = OutboundDefaultsSection()
    /// `outbound`: the outbound sockets opened at start.
    public var outbound: [OutboundSection] = []

    enum Keys: String, CodingKey, CaseIterable {
        case listen, tls, admin, limits, keepalive, compression, routes, log, outbound, cluster
        case outboundDefaults = "outbound_defaults", basePath = "base_path", rateLimit = "rate_limit", allowedOrigins = "allowed_origins"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        if let listen = try c.address(.listen) { self.listen = listen }
        self.basePath = try c.text(.basePath) ?? ""
        self.tls = try c.nested(.tls, TLSSection.self)
        self.admin = try c.nested(.admin, AdminSection.self) ?? AdminSection()
        self.limits = try c.nested(.limits, LimitsSection.self) ?? LimitsSection()
        if let keepalive = try c.optionalSection(.keepalive, KeepaliveSection.self) { self.keepalive = keepalive }
        self.compression = try c.nested(.compression, CompressionSection.self) ?? CompressionSection()
        self.rateLimit = try c.nested(.rateLimit, RateLimitSection.self)?.limit
        self.allowedOrigins = try c.texts(.allowedOrigins) ?? []
        self.log = try c.nested(.log, LogSection.self) ?? LogSection()
        self.cluster = try c.nested(.cluster, ClusterSection.self)
        self.routes = try c.list(.routes, RouteSection.self) ?? []
        if self.routes.isEmpty, !(ConfigErrorCollector.current?.errors.contains { $0.key.hasPrefix("routes") } ?? false) {
            throw ConfigError(key: "routes", value: "no routes", expected: "at least one route")
        }
        var paths = Set<String>()
        for (index, route) in self.routes.enumerated() where !paths.insert(route.path).inserted {
            let _: Void? = try ConfigErrorCollector.recover(
                ConfigError(key: "routes[\(index)].path", value: "'\(route.path)'", expected: "a path no other route has"))
        }
        self.outboundDefaults = try c.nested(.outboundDefaults, OutboundDefaultsSection.self) ?? OutboundDefaultsSection()
        self.outbound = try c.list(.outbound, OutboundSection.self) ?? []
        try ConfigErrorCollector.recovering { try self.checkOutbound() }
    }

    /// Outbound ids are unique, every bridge names a listed outbound socket with one set of bridge settings, and
    /// only bridged sockets have the `bridge` handler.
    private func checkOutbound() throws {
        var ids = Set<String>()
        for (index, socket) in self.outbound.enumerated() {
            guard let id = socket.socketID else {
                throw ConfigError(key: "outbound[\(index)].socket_id", value: "nothing", expected: "an id for each outbound socket of the file")
            }
            guard ids.insert(id).inserted else {
                throw ConfigError(key: "outbound[\(index)].socket_id", value: "'\(id)'", expected: "an id no other outbound socket has")
            }
        }
        var bridges: [String: BridgeSection] = [:]
        for (index, route) in self.routes.enumerated() {
            guard route.handler.name == "bridge", let bridge = route.handler.bridge else { continue }
            guard let target = self.outbound.firstIndex(where: { $0.socketID == bridge.outbound }) else {
                throw ConfigError(key: "routes[\(index)].bridge.outbound", value: "'\(bridge.outbound)'", expected: "the socket_id of an entry of outbound")
            }
            if let other = bridges[bridge.outbound], other != bridge {
                throw ConfigError(key: "routes[\(index)].bridge", value: "settings that differ from another route's bridge to '\(bridge.outbound)'", expected: "the same timeout, correlation_field and max_pending for every route bridging to one socket")
            }
            bridges[bridge.outbound] = bridge
            let kind = self.outbound[target].handler.name
            guard kind == "none" || kind == "bridge" else {
                throw ConfigError(key: "outbound[\(target)].handler", value: "'\(kind)'", expected: "bridge (or nothing): routes[\(index)] bridges to this socket")
            }
        }
        for (index, socket) in self.outbound.enumerated() where socket.handler.name == "bridge" && bridges[socket.socketID ?? ""] == nil {
            throw ConfigError(key: "outbound[\(index)].handler", value: "'bridge'", expected: "a route with handler bridge whose bridge.outbound is '\(socket.socketID ?? "")'")
        }
    }

    /// The bridge settings of each outbound socket that routes bridge to.
    var bridges: [String: BridgeSection] {
        var result: [String: BridgeSection] = [:]
        for route in self.routes where route.handler.name == "bridge" {
            if let bridge = route.handler.bridge { result[bridge.outbound] = bridge }
        }
        return result
    }
}

/// `tls`.
public struct TLSSection: Sendable, Decodable {
    public var certificate: String
    public var privateKey: String
    public var clientCA: String?
    public var requireClientCertificate = false

    enum Keys: String, CodingKey, CaseIterable {
        case certificate, privateKey = "private_key", clientCA = "client_ca", requireClientCertificate = "require_client_certificate"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        guard let certificate = try c.text(.certificate) else {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.certificate]), value: "nothing", expected: "a PEM certificate chain file")
        }
        guard let key = try c.text(.privateKey) else {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.privateKey]), value: "nothing", expected: "a PEM private key file")
        }
        self.certificate = certificate
        self.privateKey = key
        self.clientCA = try c.text(.clientCA)
        self.requireClientCertificate = try c.bool(.requireClientCertificate) ?? false
        if self.requireClientCertificate, self.clientCA == nil {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.clientCA]), value: "nothing", expected: "a CA file when require_client_certificate is true")
        }
    }
}

/// `admin`.
public struct AdminSection: Sendable, Decodable {
    public var listen = ListenAddress(host: "127.0.0.1", port: 9090)
    /// The bearer token of the management API; without one, the admin listener must be on loopback. `auto`
    /// (``autoToken``): a random token generated at start and printed in the banner.
    public var token: String?

    /// `idle_timeout`: how long a management connection may stay without a complete request (a partial one
    /// included) before it is closed (default 30 s).
    public var idleTimeout: TimeAmount = .seconds(30)
    /// `request_timeout`: how long a request's body may take to arrive (default 30 s; 408 after).
    public var requestTimeout: TimeAmount = .seconds(30)
    /// `max_body_size`: the largest request body (default: twice `limits.max_message_size` plus 64 KiB, so that
    /// any message the gateway accepts can be sent through the API, JSON escapes included; 413 beyond).
    public var maxBodySize: Int?

    /// The `token` value that asks for a generated token.
    public static let autoToken = "auto"

    enum Keys: String, CodingKey, CaseIterable {
        case listen, token, idleTimeout = "idle_timeout", requestTimeout = "request_timeout", maxBodySize = "max_body_size"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        if let listen = try c.address(.listen) { self.listen = listen }
        self.token = try c.text(.token).flatMap { $0.isEmpty ? nil : $0 }
        if let value = try c.duration(.idleTimeout), value > .zero { self.idleTimeout = value }
        if let value = try c.duration(.requestTimeout), value > .zero { self.requestTimeout = value }
        self.maxBodySize = try c.size(.maxBodySize)
        try self.check(listenKey: keyPath(decoder.codingPath + [Keys.listen]), tokenKey: keyPath(decoder.codingPath + [Keys.token]))
    }

    /// A listener others can reach needs a token, and one that cannot be guessed (`auto` always is fine).
    public func check(listenKey: String, tokenKey: String) throws {
        guard let token = self.token else {
            if !self.listen.isLoopback {
                throw ConfigError(key: listenKey, value: "'\(self.listen)'", expected: "a loopback address when admin.token is not set")
            }
            return
        }
        let whitespace = token.contains(where: \.isWhitespace)
        if token != Self.autoToken, !self.listen.isLoopback, token.count < 16 || whitespace {
            throw ConfigError(
                key: tokenKey, value: "a token of \(token.count) characters\(whitespace ? " with whitespace" : "")",
                expected: "at least 16 characters without whitespace (or auto) when admin.listen is not loopback")
        }
    }

    /// The token the API requires: the configured one, a random one for `auto`, or `nil`.
    public func resolvedToken() -> String? {
        guard self.token == Self.autoToken else { return self.token }
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(UInt8.random(in: 0...15, using: &generator), radix: 16) }.joined()
    }
}

/// `limits` (also per route, where every key is an override, but for those of ``topLevelOnly``).
public struct LimitsSection: Sendable, Decodable {
    public var maxConnections: Int?
    public var maxFrameSize: Int?
    public var maxMessageSize: Int?
    public var handshakeTimeout: TimeAmount?
    /// `idle_timeout`: `nil` when not set, `.some(nil)` when `off` (default at the top level: ``defaultIdleTimeout``).
    public var idleTimeout: TimeAmount??
    public var idleAction: IdleAction?
    public var closeTimeout: TimeAmount?
    public var outboundQueueSize: Int?
    public var slowConsumer: SlowConsumerPolicy?
    /// `max_groups_per_socket` (top level only; default 64).
    public var maxGroupsPerSocket: Int?
    /// `max_pending_handshakes` (top level only; `nil` when not set, `.some(nil)` when `off`).
    public var maxPendingHandshakes: Int??
    /// `max_pending_handshakes_per_address` (top level only).
    public var maxPendingHandshakesPerAddress: Int??
    /// `max_connections_per_address` (top level only).
    public var maxConnectionsPerAddress: Int??
    /// `handshake_rate_per_address`: `per_second` and `burst` (top level only).
    public var handshakeRatePerAddress: WebSocketAdmissionLimits.Rate??
    /// `max_outbound_queued_total`: the outbound queues of all connections together (top level only; `.some(nil)`
    /// when `off`).
    public var maxOutboundQueuedTotal: Int??

    /// The idle timeout of a file that sets none: a connection with no data either way for this long is closed
    /// (1001), so that silent connections cannot hold slots forever.
    public static let defaultIdleTimeout = TimeAmount.minutes(10)
    /// The admission limits of a file that sets none: see docs/configuration.md.
    public static let defaultAdmission = WebSocketAdmissionLimits(
        maxPendingHandshakes: 1024, maxPendingHandshakesPerAddress: 32, maxConnectionsPerAddress: 256,
        handshakeRatePerAddress: .init(perSecond: 50, burst: 100))

    enum Keys: String, CodingKey, CaseIterable {
        case maxConnections = "max_connections", maxFrameSize = "max_frame_size", maxMessageSize = "max_message_size"
        case handshakeTimeout = "handshake_timeout", idleTimeout = "idle_timeout", idleAction = "idle_action"
        case closeTimeout = "close_timeout", outboundQueueSize = "outbound_queue_size", slowConsumer = "slow_consumer"
        case maxGroupsPerSocket = "max_groups_per_socket", maxPendingHandshakes = "max_pending_handshakes"
        case maxPendingHandshakesPerAddress = "max_pending_handshakes_per_address"
        case maxConnectionsPerAddress = "max_connections_per_address", handshakeRatePerAddress = "handshake_rate_per_address"
        case maxOutboundQueuedTotal = "max_outbound_queued_total"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        self.maxConnections = try c.int(.maxConnections, in: 1...1_000_000)
        self.maxFrameSize = try c.size(.maxFrameSize)
        self.maxMessageSize = try c.size(.maxMessageSize)
        self.handshakeTimeout = try c.duration(.handshakeTimeout)
        self.idleTimeout = try c.optionalDuration(.idleTimeout)
        self.idleAction = try c.choice(.idleAction, IdleAction.self)
        self.closeTimeout = try c.duration(.closeTimeout)
        self.outboundQueueSize = try c.size(.outboundQueueSize)
        self.slowConsumer = try c.choice(.slowConsumer, SlowConsumerPolicy.self)
        self.maxGroupsPerSocket = try c.int(.maxGroupsPerSocket, in: 1...100_000)
        self.maxPendingHandshakes = try c.limit(.maxPendingHandshakes, in: 1...1_000_000)
        self.maxPendingHandshakesPerAddress = try c.limit(.maxPendingHandshakesPerAddress, in: 1...1_000_000)
        self.maxConnectionsPerAddress = try c.limit(.maxConnectionsPerAddress, in: 1...1_000_000)
        self.handshakeRatePerAddress = try c.optionalSection(.handshakeRatePerAddress, HandshakeRateSection.self).map { $0?.rate }
        self.maxOutboundQueuedTotal = try c.optionalSize(.maxOutboundQueuedTotal)
    }

    /// The keys that only the top level may set, each with why, and whether this section sets it.
    var topLevelOnlyKeySet: (key: String, why: String)? {
        let checks: [(Bool, Keys, String)] = [
            (self.handshakeTimeout != nil, .handshakeTimeout, "the timeout runs before a request's route is known"),
            (self.maxGroupsPerSocket != nil, .maxGroupsPerSocket, "subscriptions are checked for every socket alike"),
            (self.maxPendingHandshakes != nil, .maxPendingHandshakes, "admission limits apply before a request's route is known"),
            (self.maxPendingHandshakesPerAddress != nil, .maxPendingHandshakesPerAddress, "admission limits apply before a request's route is known"),
            (self.maxConnectionsPerAddress != nil, .maxConnectionsPerAddress, "admission limits apply before a request's route is known"),
            (self.handshakeRatePerAddress != nil, .handshakeRatePerAddress, "admission limits apply before a request's route is known"),
            (self.maxOutboundQueuedTotal != nil, .maxOutboundQueuedTotal, "it bounds every connection's queue together"),
        ]
        return checks.first { $0.0 }.map { ($0.1.rawValue, $0.2) }
    }

    /// The admission limits: the defaults, with what this (top-level) section sets.
    var admission: WebSocketAdmissionLimits {
        var limits = Self.defaultAdmission
        if let value = self.maxPendingHandshakes { limits.maxPendingHandshakes = value }
        if let value = self.maxPendingHandshakesPerAddress { limits.maxPendingHandshakesPerAddress = value }
        if let value = self.maxConnectionsPerAddress { limits.maxConnectionsPerAddress = value }
        if let value = self.handshakeRatePerAddress { limits.handshakeRatePerAddress = value }
        return limits
    }

    /// Applies these settings over a connection configuration.
    func apply(to connection: inout WebSocketConfiguration) {
        if let value = self.maxFrameSize { connection.maxFrameSize = value }
        if let value = self.maxMessageSize { connection.maxMessageSize = value }
        if let value = self.idleTimeout { connection.idleTimeout = value }
        if let value = self.closeTimeout { connection.closeTimeout = value }
        if let value = self.outboundQueueSize { connection.outboundQueueSize = value }
    }
}

/// `limits.handshake_rate_per_address`.
struct HandshakeRateSection: Decodable {
    var rate: WebSocketAdmissionLimits.Rate

    enum Keys: String, CodingKey, CaseIterable { case perSecond = "per_second", burst }

    init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        guard let perSecond = try c.number(.perSecond) else {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.perSecond]), value: "nothing", expected: "a positive number")
        }
        let burst = try c.int(.burst, in: 1...1_000_000) ?? max(1, Int((perSecond * 2).rounded(.up)))
        self.rate = .init(perSecond: perSecond, burst: burst)
    }
}

/// `keepalive`.
public struct KeepaliveSection: Sendable, Decodable {
    public var pingInterval: TimeAmount = .seconds(25)
    public var pongTimeout: TimeAmount = .seconds(10)

    enum Keys: String, CodingKey, CaseIterable { case pingInterval = "ping_interval", pongTimeout = "pong_timeout" }

    /// The defaults: a ping every 25 s, answered within 10 s.
    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        if let value = try c.duration(.pingInterval) { self.pingInterval = value }
        if let value = try c.duration(.pongTimeout) { self.pongTimeout = value }
    }
}

/// `compression`.
public struct CompressionSection: Sendable, Decodable {
    public var enabled = false
    public var minimumSize = 32
    public var level = 6

    enum Keys: String, CodingKey, CaseIterable { case enabled, minimumSize = "minimum_size", level }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        self.enabled = try c.bool(.enabled) ?? false
        self.minimumSize = try c.size(.minimumSize) ?? 32
        self.level = try c.int(.level, in: 1...9) ?? 6
    }
}

/// `rate_limit`.
struct RateLimitSection: Decodable {
    var limit: RateLimit

    enum Keys: String, CodingKey, CaseIterable { case messagesPerSecond = "messages_per_second", burst, onExceed = "on_exceed" }

    init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        guard let rate = try c.number(.messagesPerSecond) else {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.messagesPerSecond]), value: "nothing", expected: "a positive number")
        }
        // The default burst is the rate, within the range an explicit burst may have (a larger `Double` would trap).
        let burst = try c.int(.burst, in: 1...1_000_000) ?? Int(min(max(1, rate.rounded(.up)), 1_000_000))
        self.limit = RateLimit(messagesPerSecond: rate, burst: burst, onExceed: try c.choice(.onExceed, RateLimit.Action.self) ?? .close)
    }
}

extension IdleAction: CaseIterable {
    public static var allCases: [IdleAction] { [.notify, .close] }
}

extension SlowConsumerPolicy: CaseIterable {
    public static var allCases: [SlowConsumerPolicy] { [.close, .drop] }
}

extension RateLimit.Action: CaseIterable {
    public static var allCases: [RateLimit.Action] { [.close, .drop] }
}
