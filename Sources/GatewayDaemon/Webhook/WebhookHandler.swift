import FoundationEssentials
import GatewayCore
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import WebSocketEngine

/// The `webhook` handler: every event of a connection becomes an HTTP call to the user's backend, one at a time
/// and in order per connection. The backend's answer may act: a plain-text body is sent back to the sender, a JSON
/// body `{"actions": [...]}` runs gateway operations (send, close, subscribe, unsubscribe, broadcast) with the
/// event's socket as the default target.
struct WebhookHandler: GatewayHandler {
    let client: WebhookClient
    let logger: Logger

    /// The upgrade hook: posts the `open` event before the upgrade completes; a non-2xx answer refuses the upgrade
    /// with that status.
    func upgradeHook(_ request: GatewayUpgradeRequest) async -> GatewayUpgradeDecision {
        guard self.client.settings.events.contains(.open) else { return .accept() }
        let record = GatewayEventRecord(info: request.info, type: "open", timestamp: request.info.connectedAt)
        do {
            let answer = try await self.client.deliver(record)
            guard (200..<300).contains(answer.status.code) else {
                let body = String(buffer: answer.body)
                return .reject(status: answer.status, body: body.isEmpty ? "refused by the backend" : body)
            }
            return .accept()
        } catch {
            return .reject(status: .badGateway, body: "the webhook backend could not be reached")
        }
    }

    func serve(_ context: GatewayContext, events: GatewayEvents) async {
        let wanted = self.client.settings.events
        for await event in events {
            switch event.kind {
            case .text, .binary:
                guard wanted.contains(.data) else { continue }
                do {
                    let answer = try await self.client.deliver(event.record)
                    guard (200..<300).contains(answer.status.code) else {
                        throw WebhookClient.Failure(description: "backend answered \(answer.status.code)")
                    }
                    await self.act(on: answer, context: context)
                } catch {
                    // Never drop a message silently: the client learns its message was not delivered.
                    context.connection.startClose(code: .internalServerError, reason: "webhook delivery failed")
                }
            case .close:
                guard wanted.contains(.close) else { continue }
                _ = try? await self.client.deliver(event.record)
            case .open:
                // Inbound connections are announced by the upgrade hook, before their 101; outbound ones here.
                guard context.connection.type == .outbound, wanted.contains(.open) else { continue }
                _ = try? await self.client.deliver(event.record)
            case .connecting, .connectFailed, .disconnected, .reconnected, .gaveUp:
                guard wanted.contains(.reconnect) else { continue }
                _ = try? await self.client.deliver(event.record)
            case .ping, .pong, .idleTimeout, .error:
                continue
            }
        }
    }

    /// One action of a backend's answer.
    struct Action: Decodable {
        var action: String
        var socketID: String?
        var message: String?
        var type: String?
        var code: UInt16?
        var reason: String?
        var group: String?
        var path: String?
        var socketType: String?
        var groups: [String]?

        enum CodingKeys: String, CodingKey {
            case action, message, type, code, reason, group, path, groups
            case socketID = "socket_id"
            case socketType = "socket_type"
        }
    }

    struct Actions: Decodable {
        var actions: [Action]
    }

    private func act(on answer: WebhookClient.Answer, context: GatewayContext) async {
        guard answer.body.readableBytes > 0 else { return }
        if answer.contentType?.lowercased().hasPrefix("application/json") == true {
            guard let actions = try? JSONDecoder().decode(Actions.self, from: Data(answer.body.readableBytesView)) else {
                self.logger.warning("webhook answer is not an actions document", metadata: ["socket_id": "\(context.connection.id)"])
                return
            }
            for action in actions.actions {
                do {
                    try await self.run(action, context: context)
                } catch {
                    self.logger.warning("webhook action failed", metadata: ["action": "\(action.action)", "error": "\(error)"])
                }
            }
        } else {
            _ = try? await context.send(.text(String(buffer: answer.body)))
        }
    }

    private func run(_ action: Action, context: GatewayContext) async throws {
        let target = action.socketID ?? context.connection.id.rawValue
        let gateway = context.gateway
        func message() throws -> WebSocketMessage {
            guard let text = action.message else { throw WebhookClient.Failure(description: "action \(action.action) needs a message") }
            if action.type == "data-binary" {
                guard let data = Data(base64Encoded: text) else { throw WebhookClient.Failure(description: "message is not base64") }
                return .binary(ByteBuffer(bytes: data))
            }
            return .text(text)
        }
        switch action.action {
        case "send":
            try await gateway.send(target, try message())
        case "close":
            let code = action.code.map { WebSocketCloseCode(rawValue: $0) } ?? .normalClosure
            guard code.isValidOnWire else { throw WebhookClient.Failure(description: "invalid close code \(code)") }
            let connection = try gateway.connection(target)
            connection.startClose(code: code, reason: action.reason ?? "")
        case "subscribe":
            guard let group = action.group else { throw WebhookClient.Failure(description: "subscribe needs a group") }
            try gateway.subscribe(target, to: group)
        case "unsubscribe":
            guard let group = action.group else { throw WebhookClient.Failure(description: "unsubscribe needs a group") }
            try gateway.unsubscribe(target, from: group)
        case "broadcast":
            var filter = ConnectionFilter(path: action.path, groups: action.groups)
            filter.socketType = action.socketType.flatMap(SocketType.init(rawValue:))
            _ = await gateway.broadcast(try message(), to: filter)
        default:
            throw WebhookClient.Failure(description: "unknown action '\(action.action)'")
        }
    }
}
