import Foundation
import HTTPTypes
import NIOHTTP1
import Testing
import WebSocketEngine
import WebSocketTestKit

/// The management API and webhook answers describe actions in the same JSON and go through one parser and one
/// executor: the same malformed action gets the same error from both.
@Suite("wsgate daemon end to end: one action parser for the API and webhooks", .serialized)
struct ActionSharingTests {
    /// Malformed broadcasts (as the API's body, and as a webhook action) and the error both must give.
    static let malformed: [(body: String, error: String)] = [
        (#""message": "x", "socket_type": "inbond""#, "socket_type must be inbound, outbound or all, not 'inbond'"),
        (#""message": "x", "type": "data-json""#, "type must be data-text or data-binary, not 'data-json'"),
        (#""message": "x", "groupz": ["g"]"#, "unknown field 'groupz'"),
        (#""message": "x", "groups": "g""#, "field 'groups' must be an array of strings, not a string"),
    ]

    @Test func theSameMalformedActionGetsTheSameErrorFromTheAPIAndFromAWebhook() async throws {
        let backend = try await Backend(secret: "hook") { type, message, _, _ in
            guard type == "data", let message, let index = Int(message) else { return (.ok, "text/plain", "") }
            if index == Self.malformed.count {
                // A good action after the bad ones: the socket is still served and the parser still works.
                return (.ok, "application/json", #"{"actions": [{"action": "broadcast", "message": "fine", "socket_type": "inbound"}]}"#)
            }
            return (.ok, "application/json", #"{"actions": [{"action": "broadcast", \#(Self.malformed[index].body)}]}"#)
        }
        let daemon = try await DaemonProcess(yaml: """
            log: {level: warning, format: json}
            routes:
              - path: /hook
                handler: webhook
                webhook: {url: http://127.0.0.1:\(backend.port)/events, timeout: 10s, retries: 0, secret: hook}
            """)
        let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/hook")
        for (index, action) in Self.malformed.enumerated() {
            let api = try await daemon.admin(.POST, "/v1/broadcast", body: "{\(action.body)}")
            let answer = DaemonProcess.json(api.body)
            #expect(api.status == 400 && answer["type"] as? String == "bad_request", "\(api)")
            let apiError = answer["error"] as? String ?? ""
            #expect(apiError.hasPrefix(action.error), "\(apiError)")

            try await client.send(text: "\(index)")
            let line = try await daemon.logLine(containing: "webhook action refused")
            let logged = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: String] ?? [:]
            #expect(logged["error_kind"] == "bad_request" && logged["error"] == apiError, "\(line)")
        }
        try await client.send(text: "\(Self.malformed.count)")
        #expect(try await client.receive() == .text("fine"))
        try await client.close()
        #expect(await daemon.stop() == 0)
        await backend.stop()
    }
}
