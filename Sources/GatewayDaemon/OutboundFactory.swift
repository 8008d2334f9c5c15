import AsyncHTTPClient
import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOSSL
import WebSocketEngine

/// Turns `outbound` entries (from the file or from `POST /v1/outbound`) into outbound sockets: the client
/// settings, the handler (none, forward, webhook, or the bridge of the routes that bridge to the socket) and the
/// codec.
struct OutboundFactory: Sendable {
    let http: HTTPClient
    let logger: Logger
    /// One bridge per outbound socket id that routes bridge to.
    let bridges: [String: BridgeFlow]
    /// The connection settings of the file (limits, keepalive), the base of every outbound socket's.
    let connection: WebSocketConfiguration
    /// `outbound_defaults` (its allowed hosts also bound the webhooks of outbound sockets).
    let defaults: OutboundDefaults

    /// Builds the bridges of a configuration.
    static func bridges(of configuration: DaemonConfiguration) -> [String: BridgeFlow] {
        configuration.bridges.mapValues { section in
            BridgeFlow(
                outbound: section.outbound, timeout: section.timeout,
                correlation: section.correlationField.map { .jsonField($0) } ?? .inOrder, maxPending: section.maxPending)
        }
    }

    /// The outbound socket of an entry; `key` names the entry in errors (`outbound[2]`, or `body` for the API).
    func socket(_ section: OutboundSection, key: String) throws -> OutboundSocket {
        let handler: any GatewayHandler
        let bridge = section.socketID.flatMap { self.bridges[$0] }
        switch section.handler.kind {
        case .none where bridge != nil, .bridge:
            guard let bridge else {
                throw ConfigError(key: "\(key).handler", value: "'bridge'", expected: "a socket_id that a route bridges to")
            }
            handler = bridge.replies
        case .none:
            handler = IgnoringHandler()
        case .forward:
            guard bridge == nil else { throw Self.bridged(key, section) }
            handler = ForwardHandler(group: section.handler.group ?? "")
        case .webhook:
            guard bridge == nil else { throw Self.bridged(key, section) }
            let webhookHost = section.handler.webhook.flatMap { URL(string: $0.url)?.host } ?? ""
            guard self.defaults.allows(host: webhookHost) else {
                throw ConfigError(key: "\(key).handler.webhook.url", value: "host '\(webhookHost)'", expected: "one of outbound_defaults.allowed_hosts")
            }
            handler = WebhookHandler(
                client: WebhookClient(settings: section.handler.webhook!, http: self.http, route: "outbound", logger: self.logger),
                logger: self.logger)
        }
        return OutboundSocket(
            socketID: section.socketID, url: section.url, headers: section.headers, query: section.query,
            pathParameters: section.pathParameters, groups: section.groups, attributes: section.attributes,
            subprotocols: section.subprotocols, reconnect: section.reconnect, queue: section.queue, handler: handler,
            codec: section.codec, client: try self.client(section, key: key), idleAction: section.idleAction)
    }

    private static func bridged(_ key: String, _ section: OutboundSection) -> ConfigError {
        ConfigError(key: "\(key).handler", value: "'\(section.handler.kind.rawValue)'", expected: "bridge (or nothing): a route bridges to this socket")
    }

    private func client(_ section: OutboundSection, key: String) throws -> WebSocketClientConfiguration {
        var connection = self.connection
        connection.idleTimeout = section.idleTimeout
        if let size = section.maxMessageSize {
            connection.maxMessageSize = size
            connection.maxFrameSize = size
        }
        connection.compression = section.compression ? PerMessageDeflateConfiguration() : nil
        var tls = TLSConfiguration.makeClientConfiguration()
        if let settings = section.tls {
            do {
                tls = try .webSocketClient(caFile: settings.caFile, certificateChainFile: settings.certificate, privateKeyFile: settings.privateKey)
            } catch {
                throw ConfigError(key: "\(key).tls", value: "files that could not be loaded (\(error))", expected: "readable PEM files")
            }
            if settings.insecure { tls.certificateVerification = .none }
        }
        var client = WebSocketClientConfiguration(
            connection: connection, handshakeTimeout: section.handshakeTimeout, tls: tls, serverName: section.tls?.serverName)
        client.proxy = section.proxy?.proxy
        client.maxRedirects = section.maxRedirects
        client.authorization = section.auth
        client.cookies = section.cookies
        return client
    }
}

