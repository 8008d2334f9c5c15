import GatewayCore
import NIOCore
import WebSocketEngine
import Yams

/// One entry of `routes`.
public struct RouteSection: Sendable, Decodable {
    public var path: String
    /// The handler (see ``HandlerCatalog``) with its settings, written beside `handler`.
    public var handler: HandlerSection
    public var groups: [String] = []
    public var subprotocols: [String] = []
    /// How messages are decoded and encoded.
    public var codec: MessageCodec?
    public var limits = LimitsSection()
    public var rateLimit: RateLimit?
    public var allowedOrigins: [String]?

    enum Keys: String, CodingKey, CaseIterable {
        case path, handler, groups, subprotocols, webhook, bridge, group, limits, codec, preprocessors, postprocessors
        case excludeSender = "exclude_sender", rateLimit = "rate_limit", allowedOrigins = "allowed_origins"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        let here = decoder.codingPath
        guard let path = try c.text(.path) else {
            throw ConfigError(key: keyPath(here + [Keys.path]), value: "nothing", expected: "a path such as /chat/{room}")
        }
        do {
            _ = try RouteTemplate(path)
        } catch {
            throw ConfigError(key: keyPath(here + [Keys.path]), value: "'\(path)'", expected: error.expected)
        }
        self.path = path
        guard let name = try c.text(.handler) else {
            throw ConfigError(key: keyPath(here + [Keys.handler]), value: "nothing", expected: "one of \(HandlerCatalog.names(for: .route))")
        }
        let entry = try HandlerCatalog.entry(named: name, for: .route, key: keyPath(here + [Keys.handler]))
        var handler = HandlerSection(name: entry.name)
        handler.excludeSender = try c.bool(.excludeSender) ?? false
        handler.group = try c.text(.group)
        handler.webhook = try c.nested(.webhook, WebhookSection.self)
        handler.bridge = try c.nested(.bridge, BridgeSection.self)
        try entry.check(handler, keyPath(here))
        self.handler = handler
        self.groups = try c.texts(.groups) ?? []
        self.subprotocols = try c.texts(.subprotocols) ?? []
        self.codec = try c.codec(.codec, .preprocessors, .postprocessors)
        self.limits = try c.nested(.limits, LimitsSection.self) ?? LimitsSection()
        if let (key, why) = self.limits.topLevelOnlyKeySet {
            throw ConfigError(
                key: keyPath(here + [Keys.limits]) + ".\(key)", value: "a per-route \(key)",
                expected: "limits.\(key) at the top level: \(why)")
        }
        self.rateLimit = try c.nested(.rateLimit, RateLimitSection.self)?.limit
        self.allowedOrigins = try c.texts(.allowedOrigins)
    }
}

/// `routes[].bridge`.
public struct BridgeSection: Sendable, Decodable, Hashable {
    /// The outbound socket requests go to.
    public var outbound: String
    public var timeout: TimeAmount = .seconds(10)
    /// Match replies by this top-level JSON field instead of by order.
    public var correlationField: String?
    public var maxPending = 1_024

    enum Keys: String, CodingKey, CaseIterable {
        case outbound, timeout, correlationField = "correlation_field", maxPending = "max_pending"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        guard let outbound = try c.text(.outbound) else {
            throw ConfigError(key: keyPath(decoder.codingPath + [Keys.outbound]), value: "nothing", expected: "the socket_id of an outbound socket")
        }
        self.outbound = outbound
        self.timeout = try c.duration(.timeout) ?? .seconds(10)
        self.correlationField = try c.text(.correlationField)
        self.maxPending = try c.int(.maxPending, in: 1...1_000_000) ?? 1_024
    }
}

/// `routes[].webhook`.
public struct WebhookSection: Sendable, Decodable {
    /// The events a webhook can receive.
    /// The events a webhook can receive; `reconnect` covers an outbound socket's connecting, connect_failed,
    /// disconnected, reconnected and gave_up events.
    public enum Event: String, Sendable, CaseIterable { case open, data, close, reconnect }

    public var url: String
    public var events: Set<Event> = [.open, .data, .close, .reconnect]
    public var timeout: TimeAmount = .seconds(5)
    public var retries = 3
    public var backoff: TimeAmount = .milliseconds(100)
    public var secret: String?
    /// Requests in flight at once across all connections of the route.
    public var concurrency = 64
    /// Failed attempts in a row after which every delivery of the route fails at once (`circuit_failures`, 0: never).
    public var circuitFailures: Int? = 5
    /// How long deliveries fail at once before one probe goes to the backend (`circuit_open_for`).
    public var circuitOpenFor: TimeAmount = .seconds(10)

    /// The longest one delivery can take with every retry: attempts of `timeout` and the backoffs between them.
    public var longestDelivery: TimeAmount {
        var total = self.timeout
        for retry in 0..<self.retries { total = total + self.backoff * Int64(1 << min(retry, 16)) + self.timeout }
        return total
    }

    enum Keys: String, CodingKey, CaseIterable {
        case url, events, timeout, retries, backoff, secret, concurrency
        case circuitFailures = "circuit_failures", circuitOpenFor = "circuit_open_for"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        let here = decoder.codingPath
        guard let url = try c.text(.url), url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ConfigError(key: keyPath(here + [Keys.url]), value: (try? c.text(.url)).flatMap { $0.map { "'\($0)'" } } ?? "nothing", expected: "an http:// or https:// URL")
        }
        self.url = url
        if let names = try c.texts(.events) {
            var events = Set<Event>()
            for (index, name) in names.enumerated() {
                guard let event = Event(rawValue: name) else {
                    throw ConfigError(key: keyPath(here + [Keys.events]) + "[\(index)]", value: "'\(name)'", expected: "one of open, data, close, reconnect")
                }
                events.insert(event)
            }
            self.events = events
        }
        self.timeout = try c.duration(.timeout) ?? .seconds(5)
        self.retries = try c.int(.retries, in: 0...100) ?? 3
        self.backoff = try c.duration(.backoff) ?? .milliseconds(100)
        self.secret = try c.text(.secret)
        self.concurrency = try c.int(.concurrency, in: 1...100_000) ?? 64
        let failures = try c.int(.circuitFailures, in: 0...1_000_000) ?? 5
        self.circuitFailures = failures == 0 ? nil : failures
        self.circuitOpenFor = try c.duration(.circuitOpenFor) ?? .seconds(10)
    }
}

extension DaemonConfiguration {
    /// Reads a configuration from YAML text; `${VAR}` references are expanded from `environment`.
    public static func parse(yaml: String, environment: [String: String]) throws -> DaemonConfiguration {
        let (text, references) = ConfigEnvironment.substitutePlaceholders(in: yaml)
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(key: "", value: "text that is not valid YAML (\(error))", expected: "a YAML mapping of settings")
        }
        guard let node, node.mapping != nil else {
            throw ConfigError(key: "", value: "no mapping", expected: "a YAML mapping of settings")
        }
        return try ConfigEnvironment.$references.withValue(references) {
            try ConfigEnvironment.$values.withValue(environment) {
            do {
                return try YAMLDecoder().decode(DaemonConfiguration.self, from: node)
            } catch let error as ConfigError {
                throw error
            } catch let DecodingError.typeMismatch(_, context) {
                throw ConfigError(key: keyPath(context.codingPath), value: "a different kind of value", expected: "\(context.debugDescription)")
            } catch let DecodingError.dataCorrupted(context) {
                throw ConfigError(key: keyPath(context.codingPath), value: "an unreadable value", expected: context.debugDescription)
            }
            }
        }
    }
}
