import FoundationEssentials
import GatewayCore
import HTTPTypes
import Logging
import Metrics
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
    /// The listener's handshake timeout: the `open` event must be answered within it.
    let handshakeTimeout: TimeAmount

    /// The upgrade hook: posts the `open` event before the upgrade completes; a non-2xx answer refuses the upgrade
    /// with that status. A failed delivery refuses it too, before the handshake timeout would: 502 (the backend
    /// could not be reached or failed), 504 (it did not answer in time), 503 with `Retry-After` (its circuit is open).
    func upgradeHook(_ request: GatewayUpgradeRequest) async -> GatewayUpgradeDecision {
        guard self.client.settings.events.contains(.open) else { return .accept() }
        let record = GatewayEventRecord(info: request.info, type: "open", timestamp: request.info.connectedAt)
        // A tenth of the handshake timeout is kept for the answer to leave.
        let budget = WebhookClient.Budget(deadline: .now() + .nanoseconds(self.handshakeTimeout.nanoseconds / 10 * 9))
        do throws(WebhookFailure) {
            let answer = try await self.client.deliver(record, budget: budget, metadata: ["socket_id": "\(request.info.socketID)", "path": "\(request.info.path)"])
            guard (200..<300).contains(answer.status.code) else {
                let body = String(buffer: answer.body)
                return .reject(status: answer.status, body: body.isEmpty ? "refused by the backend" : body)
            }
            return .accept()
        } catch {
            let refusal = error.upgradeRefusal
            let headers: HTTPHeaders = refusal.retryAfter.map { ["Retry-After": "\($0)"] } ?? [:]
            return .reject(status: refusal.status, headers: headers, body: refusal.body)
        }
    }

    func serve(_ context: GatewayContext, events: GatewayEvents) async {
        let wanted = self.client.settings.events
        let connection = context.connection
        // Once a message could not be delivered, the client is told (1011) and the messages it sent after it are
        // not posted: they are counted and logged at the end.
        var failed = false
        var notPosted = 0
        for await event in events {
            var metadata = connection.logMetadata
            switch event.kind {
            case .text, .binary:
                guard wanted.contains(.data) else { continue }
                guard !failed else {
                    notPosted += 1
                    continue
                }
                metadata["message_bytes"] = "\(event.record.message?.utf8.count ?? 0)"
                // Retries stop once the connection is gone: nobody would learn of the answer.
                let budget = WebhookClient.Budget(isWanted: { connection.isOpen })
                do throws(WebhookFailure) {
                    let answer = try await self.client.deliver(event.record, budget: budget, metadata: metadata)
                    guard (200..<300).contains(answer.status.code) else {
                        metadata["status"] = "\(answer.status.code)"
                        self.logger.warning("webhook backend refused the message: closing with 1011", metadata: metadata)
                        throw WebhookFailure.backendError(answer.status.code)
                    }
                    await self.act(on: answer, context: context)
                } catch {
                    // Never drop a message silently: the client learns its message was not delivered.
                    failed = true
                    connection.startClose(code: .internalServerError, reason: "webhook delivery failed")
                }
            case .close:
                if notPosted > 0 {
                    metadata["messages"] = "\(notPosted)"
                    self.logger.warning("messages not posted to the webhook: an earlier one failed and the connection was closed with 1011", metadata: metadata)
                    Counter(label: "wsgate_webhook_not_posted_total", dimensions: [("route", self.client.route)]).increment(by: notPosted)
                }
                guard wanted.contains(.close) else { continue }
                // The connection is gone: one attempt, no retries.
                _ = try? await self.client.deliver(event.record, budget: .init(retries: false), metadata: metadata)
            case .open:
                // Inbound connections are announced by the upgrade hook, before their 101; outbound ones here.
                guard connection.type == .outbound, wanted.contains(.open) else { continue }
                _ = try? await self.client.deliver(event.record, metadata: metadata)
            case .connecting, .connectFailed, .disconnected, .reconnected, .gaveUp:
                guard wanted.contains(.reconnect) else { continue }
                _ = try? await self.client.deliver(event.record, metadata: metadata)
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
