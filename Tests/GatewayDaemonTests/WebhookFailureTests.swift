import Foundation
import HTTPTypes
import NIOConcurrencyHelpers
import Testing
import WebSocketEngine
import WebSocketTestKit

/// A webhook backend that is down, silent or failing, as clients and operators see it: refusals with a status that
/// says which, no retries at a connection that is gone, and a circuit that fails deliveries at once while the
/// backend keeps failing. The settings make the wrong behaviour visible without measuring time: an attempt that
/// waited out its timeout would outlast the handshake and be answered 504, not 502.
@Suite("wsgate daemon end to end: a failing webhook backend", .serialized)
struct WebhookFailureTests {
    static func config(url: String, webhook: String, handshake: String = "30s") -> String {
        """
        log: {level: info, format: json}
        limits: {handshake_timeout: \(handshake)}
        routes:
          - path: /devices/{id}
            handler: webhook
            webhook: {url: "\(url)", \(webhook)}
        """
    }

    /// The fields of a JSON log line, as text.
    static func fields(_ line: String) -> [String: String] {
        let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
        return object.compactMapValues { $0 as? String }
    }

    @Test func aRefusedConnectionFailsAtOnceAndTheClientGets502() async throws {
        // Four attempts of 20 s each would outlast the 30 s handshake: only failing at once gives 502.
        let daemon = try await DaemonProcess(yaml: Self.config(
            url: "http://127.0.0.1:1/events", webhook: "timeout: 20s, retries: 3, backoff: 10ms, circuit_failures: 0"))
        let answer = try await daemon.upgrade("/devices/1")
        #expect(answer.hasPrefix("HTTP/1.1 502"), "\(answer)")
        #expect(answer.hasSuffix("the webhook backend could not be reached: connection refused\n"), "\(answer)")
        let retry = Self.fields(try await daemon.logLine(containing: "webhook delivery failed, retrying"))
        #expect(retry["event"] == "open" && retry["route"] == "/devices/{id}" && retry["path"] == "/devices/1", "\(retry)")
        #expect(retry["socket_id"]?.count == 32 && retry["attempt"] == "1" && retry["error"] == "connection refused", "\(retry)")
        #expect(await daemon.stop() == 0)
    }

    @Test func aSilentBackendIsAnswered504BeforeTheHandshakeTimeout() async throws {
        let silent = try await CannedResponseServer.start(closeAfterResponse: false) { _ in "" }
        let daemon = try await DaemonProcess(yaml: Self.config(
            url: "http://127.0.0.1:\(silent.port)/events", webhook: "timeout: 1s, retries: 100, backoff: 10ms, circuit_failures: 0",
            handshake: "3s"))
        // The handshake timeout alone would answer 503.
        let answer = try await daemon.upgrade("/devices/1")
        #expect(answer.hasPrefix("HTTP/1.1 504") && answer.contains("the webhook backend did not answer in time"), "\(answer)")
        #expect(await daemon.stop() == 0)
        try await silent.close()
    }

    @Test func aFailingBackendOpensTheCircuitThenOneProbeClosesIt() async throws {
        let healthy = NIOLockedValueBox(false)
        let backend = try await Backend(secret: "") { type, _, _, _ in
            if type == "open" || healthy.withLockedValue({ $0 }) { return (.ok, "text/plain", "") }
            return (.internalServerError, "text/plain", "")
        }
        let daemon = try await DaemonProcess(yaml: Self.config(
            url: "http://127.0.0.1:\(backend.port)/events", webhook: "retries: 0, circuit_failures: 2, circuit_open_for: 1s, events: [open, data]"))
        let route = #"route="/devices/{id}""#
        // Two devices in (their `open` events succeed), then two failed deliveries in a row, each closing its
        // connection with 1011.
        var devices: [WebSocket] = []
        for id in 1...2 {
            devices.append(try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/devices/\(id)"))
            #expect(await backend.next()?.type == "open")
        }
        for (index, device) in devices.enumerated() {
            try await device.send(text: "reading \(index)")
            #expect(await backend.next()?.message == "reading \(index)")
            #expect(try await device.receive() == nil)
            #expect(await device.closeInfo.code == .internalServerError)
        }
        let opened = Self.fields(try await daemon.logLine(containing: "webhook backend failing"))
        #expect(opened["failures_in_a_row"] == "2" && opened["error"] == "the backend answered 500", "\(opened)")
        #expect(opened["route"] == "/devices/{id}" && opened["level"] == "error", "\(opened)")
        #expect(try await daemon.metric("wsgate_webhook_circuit_open{\(route)}") == 1)
        // While it is open, an upgrade fails at once without a request to the backend (no `open` recorded), 503
        // with Retry-After; the backend recovers meanwhile.
        healthy.withLockedValue { $0 = true }
        let refused = try await daemon.upgrade("/devices/3")
        if refused.hasPrefix("HTTP/1.1 503") {
            #expect(refused.contains("Retry-After: 1") && refused.contains("the webhook backend is failing; try again in 1 s"), "\(refused)")
        } else {
            // A machine slow enough to take a whole second before this request: it was the probe.
            #expect(refused.hasPrefix("HTTP/1.1 101"), "\(refused)")
        }
        // After a second, the next upgrade is the probe; it succeeds and closes the circuit.
        let device = try await within(20, "an upgrade after the circuit closed") {
            while true {
                if let socket = try? await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/devices/4") { return socket }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        _ = try await daemon.logLine(containing: "webhook backend answering again")
        #expect(try await daemon.metric("wsgate_webhook_circuit_open{\(route)}") == 0)
        try await device.send(text: "fine")
        var delivered = false
        while !delivered, let event = await backend.next() {
            delivered = event.type == "data" && event.message == "fine"
        }
        #expect(delivered)
        try await device.close()
        #expect(await daemon.stop() == 0)
        await backend.stop()
    }

    @Test func afterAFailedDeliveryTheMessagesThatFollowAreNotPosted() async throws {
        let backend = try await Backend(secret: "") { type, _, _, _ in
            type == "data" ? (.internalServerError, "text/plain", "") : (.ok, "text/plain", "")
        }
        let daemon = try await DaemonProcess(yaml: Self.config(
            url: "http://127.0.0.1:\(backend.port)/events", webhook: "retries: 2, backoff: 10ms, circuit_failures: 0"))
        let device = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/devices/1")
        #expect(await backend.next()?.type == "open")
        for index in 0..<5 { try await device.send(text: "m\(index)") }
        #expect(try await device.receive() == nil)
        #expect(await device.closeInfo == WebSocketCloseInfo(code: .internalServerError, reason: "webhook delivery failed", initiatedLocally: false))
        // The close event comes once the connection is gone; no message after the failed one came before it.
        while let event = await backend.next(skippingCloses: false) {
            if event.type == "close" { break }
            #expect(event.message == "m0", "\(event)")
        }
        #expect(await daemon.stop() == 0)
        await backend.stop()
    }
}
