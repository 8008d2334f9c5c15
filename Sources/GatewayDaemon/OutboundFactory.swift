import AsyncHTTPClient
import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOSSL
import WebSocketEngine

/// Turns `outbound` entries (from the file or from `POST /v1/outbound`) into outbound sockets: the client
/// settings, the handler (from the handler catalog) and the codec.
struct OutboundFactory: Sendable {
    /// What handlers are built with (shared with the routes).
    let handlers: HandlerServices
    /// The connection settings of the file (limits, keepalive), the base of every outbound socket's.
    let connection: WebSocketConfiguration

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
        let handler = try self.handlers.build(section.handler, role: .outbound, key: "\(key).handler", owner: section.socketID ?? "").handler
        return OutboundSocket(
            socketID: section.socketID, url: section.url, headers: section.headers, query: section.query,
            pathParameters: section.pathParameters, groups: section.groups, attributes: section.attributes,
            subprotocols: section.subprotocols, reconnect: section.reconnect, queue: section.queue, handler: handler,
            codec: section.codec, client: try self.client(section, key: key), idleAction: section.idleAction)
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

