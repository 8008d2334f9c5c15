import GatewayCore

/// Where a handler serves: a route's inbound connections, or an outbound socket.
public enum HandlerRole: String, Sendable, Hashable {
    case route, outbound
}

/// A handler as the file names it: its catalog name and the settings the built-in handlers read. A route writes
/// the settings beside `handler` (`routes[].webhook`, `routes[].group`...); an outbound socket writes them in a
/// mapping (`outbound[].handler: {type: forward, group: live}`) or names the handler alone.
public struct HandlerSection: Sendable {
    /// The catalog name (see ``HandlerCatalog``).
    public var name: String
    /// `forward`: the group messages fan out to.
    public var group: String?
    /// `broadcast`: leave the sender out.
    public var excludeSender = false
    /// `webhook`: the backend.
    public var webhook: WebhookSection?
    /// `bridge` (routes): the outbound socket and the matching of replies.
    public var bridge: BridgeSection?

    /// A handler by name, with no settings.
    public init(name: String) {
        self.name = name
    }

    /// The keys of an outbound socket's handler mapping.
    enum Keys: String, CodingKey, CaseIterable {
        case type, group, webhook, excludeSender = "exclude_sender"
    }

    /// Reads `outbound[].handler`: a bare name, or a mapping with `type` and the settings.
    init(outbound decoder: any Decoder) throws {
        let here = decoder.codingPath
        if let single = try? decoder.singleValueContainer(), let name = try? single.decode(String.self) {
            self.name = try HandlerCatalog.entry(named: name, for: .outbound, key: keyPath(here)).name
        } else {
            let c = try decoder.section(Keys.self)
            guard let name = try c.text(.type) else {
                throw ConfigError(key: keyPath(here + [Keys.type]), value: "nothing", expected: "one of \(HandlerCatalog.names(for: .outbound))")
            }
            self.name = try HandlerCatalog.entry(named: name, for: .outbound, key: keyPath(here + [Keys.type])).name
            self.group = try c.text(.group)
            self.excludeSender = try c.bool(.excludeSender) ?? false
            self.webhook = try c.nested(.webhook, WebhookSection.self)
        }
        try HandlerCatalog.entry(named: self.name, for: .outbound, key: keyPath(here)).check(self, keyPath(here))
    }
}

/// `outbound[].handler` in a file: decoded through ``HandlerSection/init(outbound:)``.
struct OutboundHandlerField: Decodable {
    var section: HandlerSection

    init(from decoder: any Decoder) throws {
        self.section = try HandlerSection(outbound: decoder)
    }
}
