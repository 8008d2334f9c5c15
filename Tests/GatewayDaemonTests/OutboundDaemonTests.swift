import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing
import WebSocketEngine
import WebSocketTestKit

@Suite("wsgate daemon end to end: outbound sockets, reconnection, bridge and forward", .serialized)
struct OutboundDaemonTests {
    /// The upstream service: another wsgate with an echo route and a feed route.
    static func upstreamConfig(port: Int = 0) -> String {
        """
        listen: 127.0.0.1:\(port)
        log: {level: warning}
        routes:
          - path: /rpc
            handler: echo
          - path: /feed
            handler: broadcast
            groups: [feed]
        """
    }

    static func gatewayConfig(upstreamPort: Int, extra: String = "") -> String {
        """
        log: {level: warning}
        outbound_defaults:
          base_url: ws://127.0.0.1:\(upstreamPort)
          headers: {X-From: wsgate}
          max_sockets: 4
          allowed_hosts: [127.0.0.1]
        outbound:
          - socket_id: rpc
            url: /rpc
            reconnect: {strategy: fixed, interval: 100ms, count: 300}
          - socket_id: feed
            url: /feed
            groups: [upstreams]
            handler: {type: forward, group: live}
            reconnect: {strategy: exponential, initial_interval: 50ms, growth: 2, max_interval: 400ms, max_retries: 100, jitter: 0.1}
        routes:
          - path: /api
            handler: bridge
            bridge: {outbound: rpc, timeout: 20s}
          - path: /live
            handler: echo
            groups: [live]
          - path: /records
            handler: echo
            codec: json
            preprocessors: [lines]
            postprocessors: [lines]
        \(extra)
        """
    }

    private func client(_ daemon: DaemonProcess, _ path: String) async throws -> WebSocket {
        try await WebSocketClient.connect(to: "ws://127.0.0.1:\(daemon.webSocketPort)\(path)")
    }

    private func state(_ daemon: DaemonProcess, _ id: String) async throws -> String {
        DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections/\(id)").body)["state"] as? String ?? "gone"
    }

    private func waitFor(_ daemon: DaemonProcess, _ id: String, state wanted: String) async throws {
        for _ in 0..<200 {
            if try await self.state(daemon, id) == wanted { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("socket \(id) never reached state \(wanted)")
    }

    @Test func bridgeForwardAndCodecsThroughTheBinary() async throws {
        let upstream = try await DaemonProcess(yaml: Self.upstreamConfig())
        let gateway = try await DaemonProcess(yaml: Self.gatewayConfig(upstreamPort: upstream.webSocketPort))
        let listed = try await gateway.admin(.GET, "/v1/connections?socket_type=outbound")
        #expect(DaemonProcess.json(listed.body)["connections"] as? [String] == ["feed", "rpc"])
        let info = DaemonProcess.json(try await gateway.admin(.GET, "/v1/connections/feed").body)
        #expect(info["socket_type"] as? String == "outbound" && info["state"] as? String == "open")
        #expect(info["groups"] as? [String] == ["upstreams"] && info["uri"] as? String == "ws://127.0.0.1:\(upstream.webSocketPort)/feed")
        #expect((info["headers"] as? [String: String])?["x-from"] == "wsgate")

        // Bridge: each client gets its own replies.
        let alice = try await self.client(gateway, "/api")
        let bob = try await self.client(gateway, "/api")
        for n in 0..<5 {
            try await alice.send(text: "alice \(n)")
            try await bob.send(text: "bob \(n)")
        }
        for n in 0..<5 {
            #expect(try await alice.receive() == .text("alice \(n)"))
            #expect(try await bob.receive() == .text("bob \(n)"))
        }

        // Forward: the upstream's feed fans out to the /live group.
        let watcher = try await self.client(gateway, "/live")
        let published = try await upstream.admin(.POST, "/v1/broadcast", body: #"{"message": "tick", "groups": ["feed"]}"#)
        #expect(published.status == 200)
        #expect(try await watcher.receive() == .text("tick"))

        // Codec: one event per JSON line; a bad line is an error event and the connection stays open.
        let records = try await self.client(gateway, "/records")
        try await records.send(text: "{\"a\":1}\n{bad}\n[2]\n")
        #expect(try await records.receive() == .text("{\"a\":1}\n"))
        #expect(try await records.receive() == .text("[2]\n"))

        for socket in [alice, bob, watcher, records] { try await socket.close() }
        #expect(await gateway.stop() == 0)
        #expect(await upstream.stop() == 0)
    }

    @Test func aBridgedSocketTakesNoOtherSenderSoNoReplyGoesAstray() async throws {
        let upstream = try await DaemonProcess(yaml: Self.upstreamConfig())
        let gateway = try await DaemonProcess(yaml: Self.gatewayConfig(upstreamPort: upstream.webSocketPort))
        let alice = try await self.client(gateway, "/api")
        // A message sent to the bridged socket by the API would have its echo taken for Alice's reply: refused.
        let sent = try await gateway.admin(.POST, "/v1/connections/rpc/messages", body: #"{"message": "injected"}"#)
        #expect(sent.status == 409, "\(sent.body)")
        let error = DaemonProcess.json(sent.body)
        #expect(error["type"] as? String == "socket_reserved" && (error["error"] as? String)?.contains("the bridge to rpc") == true)
        // A broadcast reports it instead of sending.
        let broadcast = DaemonProcess.json(try await gateway.admin(.POST, "/v1/broadcast", body: #"{"message": "all", "socket_type": "outbound"}"#).body)
        let failures = broadcast["failures"] as? [[String: Any]] ?? []
        #expect(failures.count == 1 && failures.first?["socket_id"] as? String == "rpc" && failures.first?["reason"] as? String == "reserved", "\(broadcast)")
        #expect(broadcast["delivered"] as? Int == 1)
        // Alice gets her own reply, and only it.
        for n in 0..<3 {
            try await alice.send(text: "alice \(n)")
            #expect(try await alice.receive() == .text("alice \(n)"))
        }
        // Closing it is still an operator's right (the bridge answers pending requests with upstream_unavailable).
        #expect(try await gateway.admin(.GET, "/v1/connections/rpc").status == 200)
        try await alice.close()
        #expect(await gateway.stop() == 0)
        #expect(await upstream.stop() == 0)
    }

    @Test func reconnectsWhenTheUpstreamIsKilledAndRestartedAndSendsWhatWaited() async throws {
        var upstream = try await DaemonProcess(yaml: Self.upstreamConfig())
        let port = upstream.webSocketPort
        let gateway = try await DaemonProcess(yaml: Self.gatewayConfig(upstreamPort: port))
        let client = try await self.client(gateway, "/api")
        let watcher = try await self.client(gateway, "/live")
        try await client.send(text: "before")
        #expect(try await client.receive() == .text("before"))

        await upstream.kill()
        try await self.waitFor(gateway, "rpc", state: "reconnecting")
        // The operator reads it in the log: the disconnection (1006, no close frame), then the failed attempts.
        let disconnected = try await gateway.logLine(containing: "outbound socket disconnected; reconnecting")
        #expect(disconnected.contains("close_code=1006") && disconnected.contains("url=ws://127.0.0.1:\(port)/"), "\(disconnected)")
        let failed = try await gateway.logLine(containing: "outbound socket connect attempt failed")
        #expect(failed.contains("failures_in_a_row=1") && failed.contains("error="), "\(failed)")
        let info = DaemonProcess.json(try await gateway.admin(.GET, "/v1/connections/rpc").body)
        #expect(info["socket_type"] as? String == "outbound")
        // Requests made while the upstream is down wait in the outbound queue, in order.
        try await client.send(text: "while down 1")
        try await client.send(text: "while down 2")
        // A message sent through the API to the feed socket waits too; the upstream's feed route broadcasts it
        // back, and the forward handler hands it to the /live group.
        try await self.waitFor(gateway, "feed", state: "reconnecting")
        let direct = Task { try await gateway.admin(.POST, "/v1/connections/feed/messages", body: #"{"message": "from the API"}"#) }

        // Attempts fail while the upstream is down, and each is counted.
        var failures = false
        for _ in 0..<100 where !failures {
            let metrics = try await gateway.admin(.GET, "/metrics").body
            failures = metrics.split(separator: "\n").contains {
                $0.hasPrefix("wsgate_outbound_connects_total") && $0.contains("socket=\"rpc\"") && $0.contains("result=\"failure\"")
            }
            if !failures { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(failures)

        upstream = try await DaemonProcess(yaml: Self.upstreamConfig(port: port))
        try await self.waitFor(gateway, "rpc", state: "open")
        #expect(try await client.receive() == .text("while down 1"))
        #expect(try await client.receive() == .text("while down 2"))
        #expect(try await direct.value.status == 204)
        #expect(try await watcher.receive() == .text("from the API"))
        try await client.send(text: "after")
        #expect(try await client.receive() == .text("after"))

        let metrics = try await gateway.admin(.GET, "/metrics").body
        let connects = metrics.split(separator: "\n").filter { $0.hasPrefix("wsgate_outbound_connects_total") && $0.contains("socket=\"rpc\"") }
        #expect(connects.contains { $0.contains("result=\"success\"") && !$0.hasSuffix(" 1") })
        #expect(connects.contains { $0.contains("result=\"failure\"") })
        try await client.close()
        try await watcher.close()
        #expect(await gateway.stop() == 0)
        #expect(await upstream.stop() == 0)
    }

    @Test func theAPIOpensNoOutboundSocketUntilAllowedHostsListsItsHost() async throws {
        let gateway = try await DaemonProcess(yaml: "log: {level: warning}\nroutes: [{path: /e, handler: echo}]")
        let (status, text) = try await gateway.admin(.POST, "/v1/outbound", body: #"{"url": "ws://127.0.0.1:1/x"}"#)
        let json = DaemonProcess.json(text)
        #expect(status == 403 && json["type"] as? String == "outbound_not_allowed", "\(text)")
        #expect((json["error"] as? String)?.contains("outbound_defaults.allowed_hosts") == true, "\(text)")
        #expect(await gateway.stop() == 0)
    }

    @Test func aRefusedUpgradeIsAnsweredWithItsStatusNeverTheTargetsBody() async throws {
        // The probe: a local file served over HTTP, read through the error answer of POST /v1/outbound.
        let secret = try await CannedResponseServer.start { _ in
            "HTTP/1.1 200 Here is SECRET-LINE-1\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\nroot:SECRET-CONTENTS\r\n"
        }
        let gateway = try await DaemonProcess(yaml: "outbound_defaults: {allowed_hosts: [127.0.0.1]}\nroutes: [{path: /e, handler: echo}]")
        let (status, text) = try await gateway.admin(.POST, "/v1/outbound", body: "{\"url\": \"ws://127.0.0.1:\(secret.port)/etc/passwd\"}")
        #expect(status == 502 && DaemonProcess.json(text)["type"] as? String == "connect_failed", "\(text)")
        #expect(text.contains("200 OK") && !text.contains("SECRET"), "\(text)")
        // The logs of a retrying socket carry the status too, not the body.
        let retrying = try await gateway.admin(.POST, "/v1/outbound", body: """
            {"socket_id": "again", "url": "ws://127.0.0.1:\(secret.port)/etc/passwd", "reconnect": {"strategy": "fixed", "interval": "10s", "count": 1}}
            """)
        #expect(retrying.status == 201, "\(retrying.body)")
        let line = try await gateway.logLine(containing: "first connect attempt failed")
        #expect(line.contains("200 OK") && !line.contains("SECRET"), "\(line)")
        #expect(await gateway.stop() == 0)
        try await secret.close()
    }

    @Test func managementAPIOpensOutboundSocketsWithClearErrors() async throws {
        let upstream = try await DaemonProcess(yaml: Self.upstreamConfig())
        let gateway = try await DaemonProcess(yaml: Self.gatewayConfig(upstreamPort: upstream.webSocketPort))
        func post(_ body: String) async throws -> (Int, [String: Any], String) {
            let (status, text) = try await gateway.admin(.POST, "/v1/outbound", body: body)
            return (status, DaemonProcess.json(text), text)
        }
        var (status, json, text) = try await post(#"""
            {"socket_id": "up-1", "url": "/rpc", "query": {"k": "v w"}, "groups": ["extra"], "subprotocols": [],
             "headers": {"X-Extra": "1"}, "reconnect": {"strategy": "fixed", "interval": "100ms", "count": 3},
             "handler": {"type": "forward", "group": "live"}}
            """#)
        #expect(status == 201 && json["socket_id"] as? String == "up-1" && json["state"] as? String == "open", "\(text)")
        let info = DaemonProcess.json(try await gateway.admin(.GET, "/v1/connections/up-1").body)
        #expect(info["uri"] as? String == "ws://127.0.0.1:\(upstream.webSocketPort)/rpc?k=v%20w")
        #expect(info["groups"] as? [String] == ["extra"])
        (status, json, text) = try await post(#"{"socket_id": "up-1", "url": "/rpc"}"#)
        #expect(status == 409 && json["type"] as? String == "socket_id_in_use", "\(text)")
        (status, json, text) = try await post(#"{"socket_id": "bad id!", "url": "/rpc"}"#)
        #expect(status == 400 && text.contains("socket_id"), "\(text)")
        (status, json, text) = try await post(#"{"socket_id": "x"}"#)
        #expect(status == 400 && text.contains("url"), "\(text)")
        (status, json, text) = try await post(#"{"url": "/rpc", "reconnect": {"strategy": "sometimes"}}"#)
        #expect(status == 400 && text.contains("reconnect.strategy"), "\(text)")
        (status, json, text) = try await post(#"{"url": "ws://127.0.0.1:1/nothing"}"#)
        #expect(status == 502 && json["type"] as? String == "connect_failed", "\(text)")
        (status, json, text) = try await post(#"{"url": "/rpc"}"#)
        #expect(status == 201 && (json["socket_id"] as? String)?.count == 32, "\(text)")
        // rpc, feed, up-1 and the random one: the cap of 4 is reached.
        (status, json, text) = try await post(#"{"url": "/rpc"}"#)
        #expect(status == 503 && json["type"] as? String == "too_many_outbound", "\(text)")
        // Closing one through the API frees its slot and stops it for good.
        #expect(try await gateway.admin(.DELETE, "/v1/connections/up-1").status == 204)
        for _ in 0..<100 where try await gateway.admin(.GET, "/v1/connections/up-1").status != 404 {
            try await Task.sleep(for: .milliseconds(20))
        }
        (status, json, text) = try await post(#"{"socket_id": "up-1", "url": "/rpc"}"#)
        #expect(status == 201, "\(text)")
        #expect(await gateway.stop() == 0)
        #expect(await upstream.stop() == 0)
    }

    @Test func webhookHandlerOfAnOutboundSocketGetsItsConnectionEvents() async throws {
        let backend = try await Backend(secret: "hook") { type, message, _, _ in
            type == "data" && message == "ping" ? (.ok, "text/plain", "pong") : (.ok, "text/plain", "")
        }
        var upstream = try await DaemonProcess(yaml: Self.upstreamConfig())
        let port = upstream.webSocketPort
        let gateway = try await DaemonProcess(yaml: """
            log: {level: warning}
            outbound:
              - socket_id: hooked
                url: ws://127.0.0.1:\(port)/rpc
                reconnect: {strategy: fixed, interval: 50ms, count: 400}
                handler: {type: webhook, webhook: {url: "http://127.0.0.1:\(backend.port)/events", secret: hook, backoff: 10ms}}
            routes: [{path: /e, handler: echo}]
            """)
        #expect(await backend.next()?.type == "connecting")
        #expect(await backend.next()?.type == "open")
        // The backend's text answer is sent on the outbound socket; the upstream echoes it back as data.
        #expect(try await gateway.admin(.POST, "/v1/connections/hooked/messages", body: #"{"message": "ping"}"#).status == 204)
        let echoed = await backend.next()!
        #expect(echoed.type == "data" && echoed.message == "ping" && echoed.socketID == "hooked" && echoed.signatureValid)
        #expect(await backend.next()?.message == "pong")
        await upstream.kill()
        var types: [String] = []
        while let event = await backend.next(skippingCloses: false), event.type != "connect_failed" { types.append(event.type) }
        #expect(types.first == "disconnected" && types.last == "connecting", "\(types)")
        upstream = try await DaemonProcess(yaml: Self.upstreamConfig(port: port))
        while let event = await backend.next(), event.type != "reconnected" {
            #expect(["connecting", "connect_failed"].contains(event.type), "\(event.type)")
        }
        #expect(await gateway.stop() == 0)
        #expect(await upstream.stop() == 0)
        await backend.stop()
    }
}
