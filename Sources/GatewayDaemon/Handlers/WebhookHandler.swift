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

    /// Runs the actions of a backend's answer (`{"actions": [...]}`), each parsed by the gateway's one action
    /// parser with the event's socket as the default target, one after the other; a plain-text answer is sent back
    /// to the sender. An action that is malformed or fails is logged with its kind and does not stop the others.
    private func act(on answer: WebhookClient.Answer, context: GatewayContext) async {
        guard answer.body.readableBytes > 0 else { return }
        guard answer.contentType?.lowercased().hasPrefix("application/json") == true else {
            _ = try? await context.send(.text(String(buffer: answer.body)))
            return
        }
        let origin = context.connection.id
        for parsed in Self.actions(in: answer.body, socket: origin.rawValue) {
            do {
                try await context.gateway.perform(try parsed.get(), origin: origin)
            } catch {
                var metadata = context.connection.logMetadata
                metadata["error_kind"] = "\(error.kind.rawValue)"
                metadata["error"] = "\(error.description)"
                self.logger.warning("webhook action refused", metadata: metadata)
            }
        }
    }

    /// The actions of an answer document, each parsed on its own (a malformed one is an error in its place).
    static func actions(in body: ByteBuffer, socket: String) -> [Result<GatewayAction, GatewayError>] {
        let document: JSONValue
        do {
            document = try JSONValue.parse(body.readableBytesView)
        } catch {
            return [.failure(error)]
        }
        guard case .object(let object) = document, case .array(let list)? = object["actions"], object.count == 1 else {
            return [.failure(.badRequest("a webhook answer must be a JSON object with one field, 'actions', an array of actions"))]
        }
        return list.map { value in
            Result { () throws(GatewayError) in try GatewayAction(try GatewayAction.Fields(value), defaultSocket: socket) }
        }
    }
}
