import Foundation
import NIOCore
import NIOHTTP1
import Testing
import WebSocketEngine
import WebSocketTestKit

/// Running out of descriptors, the management listener's timeouts and body limit, and the per-address limits of
/// the daemon, end to end against the real binary.
@Suite("wsgate daemon end to end: descriptors, admin timeouts, per-address limits", .serialized)
struct ResourceLimitTests {
    /// A metric's value in the Prometheus text of `/metrics`, 0 when absent.
    @Test func outOfDescriptorsTheListenerPausesLogsAndRecovers() async throws {
        let daemon = try await DaemonProcess(
            yaml: """
                log: {level: warning}
                limits: {handshake_timeout: 60s, max_pending_handshakes_per_address: off, max_connections_per_address: off,
                         handshake_rate_per_address: off}
                routes:
                  - {path: /echo, handler: echo}
                """,
            openFileLimit: 64)
        _ = try await daemon.logLine(containing: "open-file limit may run out")
        var silent: [any Channel] = []
        for _ in 0..<90 { silent.append(try await RawTCP.hold(port: daemon.webSocketPort)) }
        let logged = try await daemon.logLine(containing: "EMFILE")
        #expect(logged.contains("out of file descriptors") && logged.contains("accepts paused"))
        // Let the listener fail for a while: paused, it retries a handful of times, not thousands.
        try await Task.sleep(for: .seconds(2))
        for channel in silent { try await channel.close() }
        let failures = try await within(20, "the metrics") {
            while true {
                if let value = try? await daemon.metric(#"wsgate_accept_errors_total{error="EMFILE"}"#) { return value }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(failures >= 1 && failures <= 100, "accept failed \(failures) times")
        let socket = try await within(20, "a connection once descriptors are free") {
            try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/echo")
        }
        try await socket.send(text: "back")
        #expect(try await socket.receive() == .text("back"))
        _ = try await socket.close()
        #expect(await daemon.stop() == 0)
    }

    @Test func theManagementListenerClosesPartialRequestsAndSlowBodies() async throws {
        let daemon = try await DaemonProcess(yaml: """
            log: {level: warning}
            admin: {listen: 127.0.0.1:0, idle_timeout: 3s, request_timeout: 1s, max_body_size: 64}
            routes:
              - {path: /echo, handler: echo}
            """)
        // A partial head is closed at the idle timeout, without an answer.
        let partial = try await within(15, "the partial request closed") {
            try await RawTCP.exchange(port: daemon.adminPort, send: "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        }
        #expect(partial.isEmpty)
        // A body that does not arrive gets 408.
        let slow = try await within(15, "the slow body answered") {
            try await RawTCP.exchange(
                port: daemon.adminPort,
                send: "POST /v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{\"message\":",
                until: "}")
        }
        #expect(slow.hasPrefix("HTTP/1.1 408") && slow.contains("request_timeout"), "\(slow)")
        // A body over max_body_size gets 413.
        let (status, body) = try await daemon.admin(.POST, "/v1/broadcast", body: #"{"message":"\#(String(repeating: "x", count: 100))"}"#)
        #expect(status == 413 && body.contains("body_too_large"), "\(status) \(body)")
        #expect(try await daemon.metric(#"wsgate_admin_responses_total{status="413"}"#) == 1)
        #expect(try await daemon.metric(#"wsgate_admin_responses_total{status="408"}"#) == 1)
        #expect(await daemon.stop() == 0)
    }

    @Test func connectionsPerAddressAreCappedWith429() async throws {
        let daemon = try await DaemonProcess(yaml: """
            log: {level: warning}
            limits: {max_connections_per_address: 1}
            routes:
              - {path: /echo, handler: echo}
            """)
        let first = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/echo")
        let answer = try await within(20, "a 429") {
            while true {
                let answer = try await daemon.upgrade("/echo", open: true)
                if answer.hasPrefix("HTTP/1.1 429") { return answer }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(answer.contains("too many connections from this address (1)") && answer.contains("Retry-After: 5"))
        #expect(try await daemon.metric(#"wsgate_connections_total{route="",result="refused",reason="connections_per_address"}"#) >= 1)
        _ = try await first.close()
        #expect(await daemon.stop() == 0)
    }
}
