import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Testing
import WebSocketEngine
import WebSocketTestKit

/// A real HTTP backend for webhooks: records every event and answers as the test says.
final class Backend: Sendable {
    struct Event: Sendable {
        var type: String
        var message: String?
        var socketID: String
        var path: String
        var signatureValid: Bool
        /// `X-WSGate-Delivery`, the same on every attempt of one record.
        var delivery: String
        /// Whether an earlier attempt of the same delivery was recorded (its answer was lost or came too late).
        var isRepeat: Bool
    }

    let events = TestMailbox<Event>()
    private let deliveries = NIOLockedValueBox<Set<String>>([])
    private let task: Task<Void, any Error>
    let port: Int

    /// Starts the backend; `answer` maps (event type, message, path, `X-WSGate-Attempt`) to (status, content type,
    /// body).
    init(secret: String, answer: @escaping @Sendable (String, String?, String, Int) -> (HTTPResponse.Status, String, String)) async throws {
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let router = Router()
        let events = self.events
        let deliveries = self.deliveries
        router.post("/events") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let bytes = Array(body.readableBytesView)
            let json = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
            let timestamp = request.headers[HTTPField.Name("X-WSGate-Timestamp")!] ?? ""
            let signature = request.headers[HTTPField.Name("X-WSGate-Signature")!] ?? ""
            var signed = Array("\(timestamp).".utf8)
            signed += bytes
            let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Array(secret.utf8)))
            let expected = "t=\(timestamp),v1=" + mac.map { String(format: "%02x", $0) }.joined()
            let type = json["type"] as? String ?? "?"
            let message = json["message"] as? String
            let socketID = json["socket_id"] as? String ?? ""
            let delivery = request.headers[HTTPField.Name("X-WSGate-Delivery")!] ?? ""
            let attempt = request.headers[HTTPField.Name("X-WSGate-Attempt")!].flatMap { Int($0) } ?? 0
            let isRepeat = deliveries.withLockedValue { !$0.insert(delivery).inserted }
            events.put(Event(
                type: type, message: message, socketID: socketID, path: json["path"] as? String ?? "",
                signatureValid: signature == expected, delivery: delivery, isRepeat: isRepeat))
            let (status, contentType, text) = answer(type, message, json["path"] as? String ?? "", attempt)
            return Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) })
        self.task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = portStream.makeAsyncIterator()
        self.port = await iterator.next() ?? 0
    }

    func stop() async {
        self.task.cancel()
        _ = try? await self.task.value
    }

    /// The next recorded event that is not `close`, nor a repeated delivery (a retry of one recorded already, as
    /// when a loaded machine answered after the timeout: delivery is at least once).
    func next(skippingCloses: Bool = true) async -> Event? {
        while let event = await self.events.take() {
            if event.isRepeat || (skippingCloses && event.type == "close") { continue }
            return event
        }
        return nil
    }
}

@Suite("wsgate daemon end to end: the webhook backend", .serialized)
struct WebhookTests {
    static func config(port: Int, retries: Int = 3) -> String {
        """
        routes:
          - path: /devices/{id}
            handler: webhook
            groups: [devices]
            webhook: {url: http://127.0.0.1:\(port)/events, timeout: 2s, retries: \(retries), backoff: 10ms, secret: ${HOOK_SECRET}}
        """
    }

    @Test func openDataCloseInOrderWithRepliesAndActions() async throws {
        let backend = try await Backend(secret: "hook") { type, message, path, _ in
            switch (type, message) {
            case ("open", _) where path.hasSuffix("/blocked"): return (.forbidden, "text/plain", "forbidden device")
            case ("data", "ping"?): return (.ok, "text/plain", "pong")
            case ("data", "fan out"?): return (.ok, "application/json", #"{"actions": [{"action": "broadcast", "message": "to every device", "groups": ["devices"]}]}"#)
            case ("data", "join"?): return (.ok, "application/json", #"{"actions": [{"action": "subscribe", "group": "vip"}, {"action": "send", "message": "joined"}, {"action": "unsubscribe", "group": "devices"}]}"#)
            case ("data", "bye"?): return (.ok, "application/json", #"{"actions": [{"action": "close", "code": 4002, "reason": "done"}]}"#)
            default: return (.ok, "text/plain", "")
            }
        }
        let daemon = try await DaemonProcess(yaml: Self.config(port: backend.port), environment: ["HOOK_SECRET": "hook"])
        let url = "ws://127.0.0.1:\(daemon.webSocketPort)"
        do {
            _ = try await WebSocketClient.connect(to: "\(url)/devices/blocked")
            Issue.record("expected a refusal")
        } catch let error as WebSocketClientError {
            #expect(error.status == .forbidden && error.responseBody.map { String(buffer: $0) } == "forbidden device\n")
        }
        #expect(await backend.next()?.type == "open")
        let device = try await WebSocketClient.connect(to: "\(url)/devices/7")
        let other = try await WebSocketClient.connect(to: "\(url)/devices/8")
        let open = await backend.next()!
        #expect(open.type == "open" && open.path == "/devices/7" && open.signatureValid)
        #expect(await backend.next()?.type == "open")
        for index in 0..<20 { try await device.send(text: "m\(index)") }
        for index in 0..<20 {
            let event = await backend.next()!
            #expect(event.type == "data" && event.message == "m\(index)" && event.socketID == open.socketID && event.signatureValid)
        }
        try await device.send(text: "ping")
        #expect(await backend.next()?.message == "ping")
        #expect(try await device.receive() == .text("pong"))
        try await device.send(text: "fan out")
        #expect(try await device.receive() == .text("to every device"))
        #expect(try await other.receive() == .text("to every device"))
        try await device.send(text: "join")
        #expect(try await device.receive() == .text("joined"))
        let groups = try await daemon.admin(.GET, "/v1/groups")
        #expect(groups.body.contains(#""name":"vip""#) && groups.body.contains(#"{"members":1,"name":"devices"}"#))
        try await device.send(text: "bye")
        #expect(await device.closeInfo == WebSocketCloseInfo(code: WebSocketCloseCode(4002), reason: "done", initiatedLocally: false))
        try await other.close()
        #expect(await daemon.stop() == 0)
        await backend.stop()
    }

    @Test func retriesThenClosesWith1011WhenTheBackendKeepsFailing() async throws {
        let backend = try await Backend(secret: "hook") { type, message, _, attempt in
            switch (type, message) {
            case ("data", "flaky"?): return attempt < 3 ? (.internalServerError, "text/plain", "") : (.ok, "text/plain", "made it")
            case ("data", "broken"?): return (.serviceUnavailable, "text/plain", "")
            default: return (.ok, "text/plain", "")
            }
        }
        let daemon = try await DaemonProcess(yaml: Self.config(port: backend.port, retries: 2), environment: ["HOOK_SECRET": "hook"])
        let device = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/devices/9")
        _ = await backend.next()
        try await device.send(text: "flaky")
        #expect(try await device.receive() == .text("made it"))
        // Three attempts of one delivery: the same id, the later two marked as repeats.
        var attempts: [Backend.Event] = []
        while attempts.count < 3, let event = await backend.events.take() {
            if event.message == "flaky" { attempts.append(event) }
        }
        #expect(Set(attempts.map(\.delivery)).count == 1 && attempts.first?.delivery.count == 36)
        #expect(attempts.map(\.isRepeat) == [false, true, true])
        try await device.send(text: "broken")
        #expect(try await device.receive() == nil)
        #expect(await device.closeInfo == WebSocketCloseInfo(code: .internalServerError, reason: "webhook delivery failed", initiatedLocally: false))
        #expect(await daemon.stop() == 0)
        await backend.stop()
    }
}
