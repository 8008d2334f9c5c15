import Foundation
import NIOCore
import NIOHTTP1
import Testing
import WebSocketEngine
import WebSocketTestKit

/// The probe's upgrade requests (duplicate `Origin` and `Host`, group names from hostile parameters, too many
/// groups, a full gateway) get a specific refusal.
@Suite("wsgate daemon end to end: upgrade and group limits", .serialized)
struct UpgradeHardeningTests {
    static let config = """
        log: {level: warning}
        limits: {max_connections: 3, max_groups_per_socket: 2}
        allowed_origins: [https://good.example]
        routes:
          - path: /echo
            handler: echo
            limits: {max_connections: 1}
          - path: /chat/{room}
            handler: broadcast
            groups: ["room:{room}"]
        """

    @Test func atCapacityThe503CarriesRetryAfter() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let echo = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/echo")
        var answer = try await daemon.upgrade("/echo")
        #expect(answer.hasPrefix("HTTP/1.1 503") && answer.contains("route /echo at capacity"), "\(answer)")
        #expect(answer.lowercased().contains("\r\nretry-after: 5\r\n"), "\(answer)")
        let first = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/chat/a")
        let second = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/chat/a")
        answer = try await daemon.upgrade("/chat/a")
        #expect(answer.hasPrefix("HTTP/1.1 503") && answer.contains("gateway at capacity"), "\(answer)")
        #expect(answer.lowercased().contains("\r\nretry-after: 5\r\n"), "\(answer)")
        for socket in [echo, first, second] { try await socket.close() }
        #expect(await daemon.stop() == 0)
    }

    @Test func everyRefusedRequestIsLoggedAndCountedWithItsStatus() async throws {
        let daemon = try await DaemonProcess(yaml: "log: {level: info}\nlimits: {handshake_timeout: 500ms}\nroutes: [{path: /echo, handler: echo}]")
        // Refused by the server itself: no key, another method, too slow, no upgrade, headers too large, a version
        // it does not speak.
        let refusals = [
            ("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", "400"),
            ("POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", "405"),
            ("GET /echo HTTP/1.1\r\nHost: x\r\n", "408"),
            ("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", "426"),
            ("GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 100_000))\r\n\r\n", "431"),
            ("GET /echo HTTP/1.0\r\nHost: x\r\n\r\n", "505"),
        ]
        for (request, status) in refusals {
            let answer = try await within(10, "an answer") { try await RawTCP.exchange(port: daemon.webSocketPort, send: request) }
            #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(answer)")
            let line = try await daemon.logLine(containing: "refused: \(status)")
            #expect(line.contains("upgrade request from 127.0.0.1 refused: \(status) "), "\(line)")
            #expect(try await daemon.metric(#"wsgate_connections_total{route="",result="refused",reason="\#(status)"}"#) == 1)
        }
        // Refused by the gateway: no such route.
        #expect(try await daemon.upgrade("/nowhere").hasPrefix("HTTP/1.1 404"))
        let line = try await daemon.logLine(containing: "refused: 404")
        #expect(line.contains("upgrade request from 127.0.0.1 for /nowhere refused: 404 "), "\(line)")
        #expect(try await daemon.metric(#"wsgate_connections_total{route="",result="refused",reason="404"}"#) == 1)
        #expect(await daemon.stop() == 0)
    }

    @Test func closesAreLoggedAndCountedWithTheClosersCodeAndReason() async throws {
        let daemon = try await DaemonProcess(yaml: """
            log: {level: info, format: json}
            limits: {close_timeout: 500ms}
            rate_limit: {messages_per_second: 1, burst: 1}
            routes: [{path: /echo, handler: echo}]
            """)
        // A kick through the API: the client gets the code and reason, and so does the log.
        let kicked = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/echo")
        let id = try #require((DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections").body)["connections"] as? [String])?.first)
        #expect(try await daemon.admin(.DELETE, "/v1/connections/\(id)?code=4000&reason=kicked").status == 204)
        #expect(await kicked.closeInfo == WebSocketCloseInfo(code: WebSocketCloseCode(4000), reason: "kicked", initiatedLocally: false))
        var line = WebhookFailureTests.fields(try await daemon.logLine(containing: "connection closed"))
        #expect(line["socket_id"] == id && line["close_code"] == "4000" && line["close_reason"] == "kicked" && line["closed_by"] == "gateway", "\(line)")
        // A client over its rate limit that never answers the close: still 1008, not a 1006 close timeout.
        let request = Self.upgradeRequest("/echo")
        // Fifty masked one-byte text frames in one write: the first is admitted, the second closes, the rest are
        // discarded without being counted again (one rate-limited close, not 49).
        let frames = Array(repeating: [0x81, 0x81, 1, 2, 3, 4, 0x61 ^ 1] as [UInt8], count: 50).flatMap { $0 }
        let silent = try await RawTCP.hold(port: daemon.webSocketPort, send: Array(request.utf8) + frames)
        line = WebhookFailureTests.fields(try await daemon.logLine(containing: "connection closed"))
        #expect(line["close_code"] == "1008" && line["close_reason"] == "rate limit exceeded" && line["closed_by"] == "gateway", "\(line)")
        #expect(try await daemon.metric(#"wsgate_closes_total{route="/echo",code="1008"}"#) == 1)
        #expect(try await daemon.metric(#"wsgate_closes_total{route="/echo",code="1006"}"#) == 0)
        #expect(try await daemon.metric(#"wsgate_rate_limited_total{route="/echo",action="close"}"#) == 1)
        try? await silent.close()
        #expect(await daemon.stop() == 0)
    }

    @Test func aSlowConsumerFloodIsLoggedOncePerTenSecondsWithACount() async throws {
        let daemon = try await DaemonProcess(yaml: """
            log: {level: warning, format: json}
            limits: {outbound_queue_size: 16KiB, slow_consumer: drop}
            routes: [{path: /feed, handler: broadcast, groups: [feed]}]
            """)
        // A client that never reads: once the socket buffers are full, every broadcast fails for it.
        let stalled = try await RawTCP.hold(port: daemon.webSocketPort, send: Array(Self.upgradeRequest("/feed").utf8), reading: false)
        let message = String(repeating: "x", count: 60_000)
        var failures = 0
        var firstLine: ContinuousClock.Instant?
        for _ in 0..<400 where failures < 50 {
            let answer = DaemonProcess.json(try await daemon.admin(.POST, "/v1/broadcast", body: #"{"message": "\#(message)", "groups": ["feed"]}"#).body)
            failures += (answer["failures"] as? [Any])?.count ?? 0
            if failures > 0, firstLine == nil {
                _ = try await daemon.logLine(containing: "slow consumer: broadcast not delivered")
                firstLine = .now
            }
        }
        #expect(failures >= 50)
        // The other failures were not logged one by one: no second line came before the interval ended.
        let second = try? await daemon.logLine(containing: "slow consumer: broadcast not delivered", seconds: 0.5)
        if let firstLine, ContinuousClock.now - firstLine < .seconds(9) { #expect(second == nil, "\(second ?? "")") }
        try? await stalled.close()
        #expect(await daemon.stop() == 0)
    }

    static func upgradeRequest(_ path: String) -> String {
        "GET \(path) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    }

    @Test func duplicateOriginAndHostHeadersAreRefused() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        var answer = try await daemon.upgrade("/chat/a", headers: "Host: 127.0.0.1\r\nOrigin: https://good.example\r\nOrigin: https://evil.example")
        #expect(answer.hasPrefix("HTTP/1.1 403") && answer.contains("more than one Origin"), "\(answer)")
        answer = try await daemon.upgrade("/chat/a", headers: "Host: 127.0.0.1\r\nHost: evil.example\r\nOrigin: https://good.example")
        #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains("more than one Host"), "\(answer)")
        answer = try await daemon.upgrade("/chat/a", headers: "Host: 127.0.0.1\r\nOrigin: https://good.example", open: true)
        #expect(answer.hasPrefix("HTTP/1.1 101"), "\(answer)")
        #expect(await daemon.stop() == 0)
    }

    @Test func groupNamesFromHostileParametersAreRefusedNamingTheParameter() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let long = String(repeating: "x", count: 300)
        for (path, reason) in [
            ("/chat/a%E2%80%AEb", "parameter room"), ("/chat/a%07b", "parameter room"), ("/chat/a%E2%81%A6b", "parameter room"),
            ("/chat/..%2F..%2Fadmin", "parameter room"), ("/chat/\(long)", "group name of 305 bytes"),
        ] {
            let answer = try await daemon.upgrade(path)
            #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains(reason), "\(path): \(answer)")
        }
        let answer = try await daemon.upgrade("/chat/caf%C3%A9..ok", open: true)
        #expect(answer.hasPrefix("HTTP/1.1 101"), "\(answer)")
        #expect(await daemon.stop() == 0)
    }

    @Test func subscribingBeyondTheGroupLimitsIs422() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)/chat/a")
        let id = try #require((DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections").body)["connections"] as? [String])?.first)
        #expect(try await daemon.admin(.PUT, "/v1/connections/\(id)/groups/second").status == 204)
        #expect(try await daemon.admin(.PUT, "/v1/connections/\(id)/groups/second").status == 204)
        var (status, text) = try await daemon.admin(.PUT, "/v1/connections/\(id)/groups/third")
        #expect(status == 422 && DaemonProcess.json(text)["type"] as? String == "group_limit" && text.contains("max_groups_per_socket"), "\(text)")
        #expect(try await daemon.admin(.DELETE, "/v1/connections/\(id)/groups/second").status == 204)
        (status, text) = try await daemon.admin(.PUT, "/v1/connections/\(id)/groups/\(String(repeating: "g", count: 257))")
        #expect(status == 422 && text.contains("257 bytes"), "\(text)")
        try await socket.close()
        #expect(await daemon.stop() == 0)
    }
}
