import AsyncHTTPClient
import Foundation
import GatewayCore
import Logging
import NIOCore

/// One handler the daemon offers: its config name, where it may serve, how its settings are checked when the file
/// is read, and how it is built. Routes and outbound sockets are wired through the same entries.
struct HandlerEntry: Sendable {
    /// What an entry's factory gets.
    struct Context: Sendable {
        /// A route or an outbound socket.
        var role: HandlerRole
        /// Where the handler's settings are, for errors (`routes[2]`, `outbound[0].handler`, `body.handler`).
        var key: String
        /// The route's path or the outbound socket's id, as webhook events and logs name it.
        var owner: String
        /// The bridge this outbound socket answers for, if a route bridges to it.
        var bridge: BridgeFlow?
        /// Every bridge by outbound socket id (a `bridge` route looks its own up).
        var bridges: [String: BridgeFlow]
        var http: HTTPClient
        var logger: Logger
        var outboundDefaults: OutboundDefaults
        /// The listener's handshake timeout, which bounds what a route's upgrade hook may take.
        var handshakeTimeout: TimeAmount
    }

    /// A built handler, with the upgrade hook it wants on a route.
    struct Built: Sendable {
        var handler: any GatewayHandler
        var upgradeHook: (@Sendable (GatewayUpgradeRequest) async -> GatewayUpgradeDecision)?
    }

    /// The name in the file.
    var name: String
    /// Where it may serve.
    var roles: Set<HandlerRole>
    /// Checks the settings when the file is read; `key` is where they are. Throws ``ConfigError``.
    var check: @Sendable (_ section: HandlerSection, _ key: String) throws -> Void = { _, _ in }
    /// Builds the handler. Throws ``ConfigError``.
    var make: @Sendable (_ section: HandlerSection, _ context: Context) throws -> Built
}

/// Every handler the daemon offers, by name: the one list that routes, outbound sockets, `wsgate check` and the
/// management API's `POST /v1/outbound` read. To add a handler, write it (in `Handlers/` of GatewayCore, or here when
/// it needs the daemon's services) and add its entry to ``entries``.
enum HandlerCatalog {
    static let entries: [HandlerEntry] = [.echo, .broadcast, .forward, .webhook, .bridge, .none]

    /// The names usable for `role`, for errors and docs.
    static func names(for role: HandlerRole) -> String {
        self.entries.filter { $0.roles.contains(role) }.map(\.name).joined(separator: ", ")
    }

    /// The entry called `name` that may serve as `role`; `key` names the setting in the error.
    static func entry(named name: String, for role: HandlerRole, key: String) throws -> HandlerEntry {
        guard let entry = self.entries.first(where: { $0.name == name && $0.roles.contains(role) }) else {
            throw ConfigError(key: key, value: "'\(name)'", expected: "one of \(self.names(for: role))")
        }
        return entry
    }

    /// Builds the handler a section names. An outbound socket that a route bridges to must have `bridge` (or
    /// `none`, which means the same there).
    static func make(_ section: HandlerSection, _ context: HandlerEntry.Context) throws -> HandlerEntry.Built {
        if context.bridge != nil, section.name != HandlerEntry.bridge.name, section.name != HandlerEntry.none.name {
            throw ConfigError(key: context.key, value: "'\(section.name)'", expected: "bridge (or nothing): a route bridges to this socket")
        }
        return try self.entry(named: section.name, for: context.role, key: context.key).make(section, context)
    }
}

extension HandlerEntry {
    /// Echoes every message back (an outbound `echo` socket answers its upstream, as Autobahn's client suite
    /// expects).
    static let echo = HandlerEntry(name: "echo", roles: [.route, .outbound]) { _, _ in Built(handler: EchoHandler()) }

    /// Fans every message out to the sender's groups.
    static let broadcast = HandlerEntry(name: "broadcast", roles: [.route, .outbound]) { section, _ in
        Built(handler: BroadcastHandler(excludeSender: section.excludeSender))
    }

    /// Broadcasts every message to the inbound members of `group`.
    static let forward = HandlerEntry(name: "forward", roles: [.route, .outbound], check: Self.checkForward) { section, _ in
        Built(handler: ForwardHandler(group: section.group ?? ""))
    }

    private static func checkForward(_ section: HandlerSection, _ key: String) throws {
        guard let group = section.group, !group.isEmpty else {
            throw ConfigError(key: "\(key).group", value: "nothing", expected: "the group the forward handler fans out to")
        }
    }

    /// Posts every event to an HTTP backend; on a route, the `open` event decides the upgrade.
    static let webhook = HandlerEntry(name: "webhook", roles: [.route, .outbound], check: Self.checkWebhook, make: Self.makeWebhook)

    private static func checkWebhook(_ section: HandlerSection, _ key: String) throws {
        guard section.webhook != nil else {
            throw ConfigError(key: "\(key).webhook", value: "nothing", expected: "webhook settings (at least url) for handler webhook")
        }
    }

    private static func makeWebhook(_ section: HandlerSection, _ context: Context) throws -> Built {
        try self.checkWebhook(section, context.key)
        let settings = section.webhook!
        if context.role == .outbound {
            let host = URL(string: settings.url)?.host ?? ""
            guard context.outboundDefaults.allows(host: host) else {
                throw ConfigError(key: "\(context.key).webhook.url", value: "host '\(host)'", expected: "one of outbound_defaults.allowed_hosts")
            }
        }
        let client = WebhookClient(
            settings: settings, http: context.http, route: context.role == .route ? context.owner : "outbound", logger: context.logger)
        let handler = WebhookHandler(client: client, logger: context.logger, handshakeTimeout: context.handshakeTimeout)
        guard context.role == .route else { return Built(handler: handler) }
        return Built(handler: handler, upgradeHook: { await handler.upgradeHook($0) })
    }

    /// Request and reply through an outbound socket: a route's side sends requests, the socket's side answers them.
    static let bridge = HandlerEntry(name: "bridge", roles: [.route, .outbound], check: Self.checkBridge, make: Self.makeBridge)

    private static func checkBridge(_ section: HandlerSection, _ key: String) throws {
        guard key.hasPrefix("routes"), section.bridge == nil else { return }
        throw ConfigError(key: "\(key).bridge", value: "nothing", expected: "bridge settings (at least outbound) for handler bridge")
    }

    private static func makeBridge(_ section: HandlerSection, _ context: Context) throws -> Built {
        switch context.role {
        case .route:
            let target = section.bridge?.outbound ?? ""
            guard let flow = context.bridges[target] else {
                throw ConfigError(key: "\(context.key).bridge.outbound", value: "'\(target)'", expected: "the socket_id of an entry of outbound")
            }
            return Built(handler: flow.requests)
        case .outbound:
            guard let flow = context.bridge else {
                throw ConfigError(key: context.key, value: "'bridge'", expected: "a socket_id that a route bridges to")
            }
            return Built(handler: flow.replies)
        }
    }

    /// An outbound socket that only carries what the gateway sends (its messages are dropped), or the replies of
    /// the routes that bridge to it.
    static let none = HandlerEntry(name: "none", roles: [.outbound]) { _, context in
        Built(handler: context.bridge.map { $0.replies } ?? IgnoringHandler())
    }
}

/// What the daemon gives every handler it builds: one value shared by route and outbound wiring.
struct HandlerServices: Sendable {
    let http: HTTPClient
    let logger: Logger
    /// One bridge per outbound socket id that routes bridge to.
    let bridges: [String: BridgeFlow]
    /// `outbound_defaults` (its allowed hosts also bound the webhooks of outbound sockets).
    let outboundDefaults: OutboundDefaults
    /// The listener's handshake timeout.
    let handshakeTimeout: TimeAmount

    /// Builds the handler of a route (`owner`: its path) or of an outbound socket (`owner`: its id); `key` is where
    /// its settings are, for errors.
    func build(_ section: HandlerSection, role: HandlerRole, key: String, owner: String) throws -> HandlerEntry.Built {
        let context = HandlerEntry.Context(
            role: role, key: key, owner: owner, bridge: role == .outbound ? self.bridges[owner] : nil, bridges: self.bridges,
            http: self.http, logger: self.logger, outboundDefaults: self.outboundDefaults, handshakeTimeout: self.handshakeTimeout)
        return try HandlerCatalog.make(section, context)
    }
}
