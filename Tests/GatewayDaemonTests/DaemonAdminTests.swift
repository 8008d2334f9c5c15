import Foundation
import NIOCore
import NIOHTTP1
import GatewayDaemon
import Testing
import WebSocketEngine

@Suite("wsgate daemon end to end: the tour and the management API", .serialized)
struct DaemonAdminTests {
    static let config = """
        admin: {listen: 127.0.0.1:0, token: ${TEST_TOKEN}}
        limits: {max_message_size: 4KiB}
        \(DefaultConfiguration.routes)
        """
    static let token = "t0ken"

    private func client(_ daemon: DaemonProcess, _ path: String) async throws -> WebSocket {
        try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)\(path)")
    }

    @Test func theReadmeTour() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config, environment: ["TEST_TOKEN": Self.token])
        let alice = try await self.client(daemon, "/chat/lobby")
        let bob = try await self.client(daemon, "/chat/lobby")
        try await alice.send(text: "hello bob")
        #expect(try await bob.receive() == .text("hello bob"))
        #expect(try await alice.receive() == .text("hello bob"))
        let listed = try await daemon.admin(.GET, "/v1/connections", token: Self.token)
        #expect(listed.status == 200)
        let ids = DaemonProcess.json(listed.body)["connections"] as? [String] ?? []
        #expect(ids.count == 2)
        // Send to one of them: the one whose address is Bob's.
        let bobAddress = "127.0.0.1:\(bob.localAddress!.port!)"
        var bobID = ""
        for id in ids where DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections/\(id)", token: Self.token).body)["remote_address"] as? String == bobAddress {
            bobID = id
        }
        let sent = try await daemon.admin(.POST, "/v1/connections/\(bobID)/messages", body: #"{"message": "from curl"}"#, token: Self.token)
        #expect(sent.status == 204)
        #expect(try await bob.receive() == .text("from curl"))
        try await alice.close()
        try await bob.close()
        #expect(await daemon.stop() == 0)
    }

    @Test func everyEndpointAndItsErrors() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config, environment: ["TEST_TOKEN": Self.token])
        let room = try await self.client(daemon, "/chat/a?user=ada")
        let echo = try await self.client(daemon, "/echo")
        func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil, token: String? = Self.token) async throws -> (Int, [String: Any], String) {
            let (status, text) = try await daemon.admin(method, path, body: body, token: token)
            return (status, DaemonProcess.json(text), text)
        }
        // Authentication.
        var (status, json, _) = try await call(.GET, "/v1/connections", token: nil)
        #expect(status == 401 && json["type"] as? String == "unauthorized" && json["status"] as? Int == 401)
        (status, json, _) = try await call(.GET, "/v1/connections", token: "wrong")
        #expect(status == 401)
        (status, json, _) = try await call(.GET, "/healthz", token: nil)
        #expect(status == 200 && json["status"] as? String == "ok" && json["connections"] as? Int == 2)
        // Filters and info.
        (status, json, _) = try await call(.GET, "/v1/connections?route=/chat/%7Broom%7D")
        let roomID = (json["connections"] as? [String])?.first ?? ""
        #expect(status == 200 && !roomID.isEmpty)
        (status, json, _) = try await call(.GET, "/v1/connections?group=room:a")
        #expect(json["connections"] as? [String] == [roomID])
        (status, json, _) = try await call(.GET, "/v1/connections?path=/echo")
        let echoID = (json["connections"] as? [String])?.first ?? ""
        (status, json, _) = try await call(.GET, "/v1/connections?socket_type=outbound")
        #expect(json["connections"] as? [String] == [])
        (status, json, _) = try await call(.GET, "/v1/connections?socket_type=sideways")
        #expect(status == 400 && json["type"] as? String == "bad_request")
        (status, json, _) = try await call(.GET, "/v1/connections/\(roomID)")
        #expect(status == 200 && json["socket_id"] as? String == roomID && json["route"] as? String == "/chat/{room}")
        #expect((json["parameters"] as? [String: String]) == ["room": "a", "user": "ada"] && json["groups"] as? [String] == ["room:a"])
        (status, json, _) = try await call(.GET, "/v1/connections/doesnotexist")
        #expect(status == 404 && json["type"] as? String == "no_such_socket")
        (status, json, _) = try await call(.GET, "/v1/connections/bad_id")
        #expect(status == 400 && json["type"] as? String == "invalid_socket_id")
        // Messages.
        (status, _, _) = try await call(.POST, "/v1/connections/\(echoID)/messages", #"{"message": "AAEC", "type": "data-binary"}"#)
        #expect(status == 204)
        #expect(try await echo.receive() == .binary(ByteBuffer(bytes: [0, 1, 2])))
        (status, json, _) = try await call(.POST, "/v1/connections/\(echoID)/messages", #"{"message": "!!", "type": "data-binary"}"#)
        #expect(status == 400)
        (status, json, _) = try await call(.POST, "/v1/connections/\(echoID)/messages", #"{"message": "x", "type": "data-video"}"#)
        #expect(status == 400)
        (status, json, _) = try await call(.POST, "/v1/connections/\(echoID)/messages", #"{"text": "x"}"#)
        #expect(status == 400 && (json["error"] as? String ?? "").contains("message"))
        (status, json, _) = try await call(.POST, "/v1/connections/\(echoID)/messages", "not json")
        #expect(status == 400)
        (status, json, _) = try await call(.POST, "/v1/connections/\(echoID)/messages", #"{"message": "\#(String(repeating: "x", count: 5000))"}"#)
        #expect(status == 413 && json["type"] as? String == "message_too_large")
        // Groups.
        (status, _, _) = try await call(.PUT, "/v1/connections/\(echoID)/groups/news")
        #expect(status == 204)
        (status, json, _) = try await call(.GET, "/v1/groups")
        let groups = (json["groups"] as? [[String: Any]] ?? []).map { "\($0["name"]!)=\($0["members"]!)" }
        #expect(groups == ["news=1", "room:a=1"])
        (status, json, _) = try await call(.POST, "/v1/broadcast", #"{"message": "extra", "groups": ["news", "room:a"]}"#)
        #expect(status == 200 && json["delivered"] as? Int == 2 && (json["failures"] as? [Any])?.isEmpty == true)
        #expect(try await echo.receive() == .text("extra"))
        #expect(try await room.receive() == .text("extra"))
        (status, _, _) = try await call(.DELETE, "/v1/connections/\(echoID)/groups/news")
        #expect(status == 204)
        // Closing.
        (status, json, _) = try await call(.DELETE, "/v1/connections/\(echoID)?code=999")
        #expect(status == 400)
        (status, _, _) = try await call(.DELETE, "/v1/connections/\(echoID)?code=4000&reason=bye")
        #expect(status == 204)
        #expect(await echo.closeInfo == WebSocketCloseInfo(code: WebSocketCloseCode(4000), reason: "bye", initiatedLocally: false))
        (status, json, _) = try await call(.DELETE, "/v1/connections?route=/chat/%7Broom%7D&code=1001")
        #expect(status == 200 && json["closed"] as? Int == 1)
        #expect(await room.closeInfo.code == .goingAway)
        // Unknown endpoints, metrics and the document.
        (status, json, _) = try await call(.GET, "/v2/nothing")
        #expect(status == 404 && json["type"] as? String == "not_found")
        let metrics = try await daemon.admin(.GET, "/metrics")
        #expect(metrics.status == 200 && metrics.body.contains("wsgate_connections_total") && metrics.body.contains("wsgate_messages_total"))
        #expect(metrics.body.contains("wsgate_event_loop_lag_seconds{loop=\"max\"}"), "the event-loop lag probe reports")
        let document = try await daemon.admin(.GET, "/openapi.yaml")
        #expect(document.status == 200 && document.body.hasPrefix("openapi: 3"))
        #expect(await daemon.stop() == 0)
    }

    @Test func shutdownClosesClientsWith1001() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config, environment: ["TEST_TOKEN": Self.token])
        let socket = try await self.client(daemon, "/echo")
        try await socket.send(text: "ready")
        #expect(try await socket.receive() == .text("ready"))
        #expect(await daemon.stop() == 0)
        #expect(await socket.closeInfo == WebSocketCloseInfo(code: .goingAway, reason: "gateway shutting down", initiatedLocally: false))
    }

    @Test func checkValidatesFiles() async throws {
        let good = try await runCheck(Self.config)
        #expect(good.status == 0 && good.output.contains("is valid"))
        let bad = try await runCheck("routes: [{path: /e, handler: echo, extra: 1}]")
        #expect(bad.status == 1 && bad.output.contains("routes[0].extra"))
        // Valid, with a warning that names the keys that work against each other.
        let slow = try await runCheck("routes: [{path: /w, handler: webhook, webhook: {url: 'http://127.0.0.1:1/', timeout: 5s, retries: 3}}]")
        #expect(slow.status == 0 && slow.output.contains("is valid"), "\(slow.output)")
        #expect(slow.output.contains("wsgate: warning: routes[0].webhook.timeout × (1 + routes[0].webhook.retries)"), "\(slow.output)")
        #expect(slow.output.contains("exceeds limits.handshake_timeout (default 10s)"), "\(slow.output)")
    }

    @Test func versionAndHelpShowWhatAUserNeeds() async throws {
        let version = try await DaemonProcess.run(["--version"])
        #expect(version.status == 0 && version.output.split(separator: ".").count == 3, "\(version.output)")
        let help = try await DaemonProcess.run(["--help"])
        #expect(help.status == 0 && help.output.contains("--config FILE") && help.output.contains("--listen HOST:PORT"), "\(help.output)")
        #expect(help.output.contains("--version"))
    }

    private func runCheck(_ yaml: String) async throws -> (status: Int32, output: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("check-\(UUID().uuidString).yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        return try await DaemonProcess.run(["check", "--config", file.path])
    }
}
