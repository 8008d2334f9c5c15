import Foundation
import GatewayTestKit
import NIOHTTP1
import Testing
import WebSocketEngine

/// Several wsgate processes joined through a real PostgreSQL server: membership as `GET /v1/nodes` shows it,
/// a node killed, a node stopped, the database restarted.
@Suite("wsgate cluster: nodes through PostgreSQL", .serialized)
struct ClusterDaemonTests {
    static func config(node: String, url: String, schema: String) -> String {
        """
        log: {level: info}
        cluster: {postgres: '\(url)', node_id: \(node), heartbeat: 200ms, node_timeout: 1s, schema: \(schema)}
        routes: [{path: /echo, handler: echo}]
        """
    }

    /// The nodes a daemon's `GET /v1/nodes` lists, by id, with their state and connection count.
    private func nodes(_ daemon: DaemonProcess) async throws -> [String: (state: String, connections: Int)] {
        let (status, body) = try await daemon.admin(.GET, "/v1/nodes")
        guard status == 200 else { return [:] }
        var result: [String: (String, Int)] = [:]
        for node in DaemonProcess.json(body)["nodes"] as? [[String: Any]] ?? [] {
            result[node["node_id"] as? String ?? ""] = (node["state"] as? String ?? "", node["connections"] as? Int ?? -1)
        }
        return result
    }

    private func eventually(_ seconds: Double = 30, _ condition: () async throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func nodesSeeEachOtherAKilledNodeIsLostAndAStoppedOneLeavesAtOnce() async throws {
        let schema = TestPostgres.freshSchema()
        let url = TestPostgres.sharedURL
        let n1 = try await DaemonProcess(yaml: Self.config(node: "n1", url: url, schema: schema))
        let n2 = try await DaemonProcess(yaml: Self.config(node: "n2", url: url, schema: schema))
        let n3 = try await DaemonProcess(yaml: Self.config(node: "n3", url: url, schema: schema))
        #expect(n1.banner.contains("cluster node n1 on postgres://wsgate:***@127.0.0.1:"), "\(n1.banner)")
        #expect(await self.eventually { try await self.nodes(n1).keys.sorted() == ["n1", "n2", "n3"] })
        #expect(try await self.nodes(n3).values.allSatisfy { $0.state == "up" })

        // Connections are counted per node with each heartbeat.
        let a = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(n2.webSocketPort)/echo")
        let b = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(n2.webSocketPort)/echo")
        #expect(await self.eventually { try await self.nodes(n1)["n2"]?.connections == 2 })

        // SIGKILL: marked lost after the node timeout (1 s), and said so in the log of the node that marked it.
        let killed = ContinuousClock.now
        await n3.kill()
        #expect(await self.eventually { try await self.nodes(n1)["n3"]?.state == "lost" })
        #expect(ContinuousClock.now - killed > .milliseconds(700))

        // A graceful stop: gone at once (well before a node timeout would mark it).
        try await a.close()
        try await b.close()
        #expect(await n2.stop() == 0)
        let stopped = ContinuousClock.now
        #expect(await self.eventually(0.9) { try await self.nodes(n1)["n2"] == nil })
        #expect(ContinuousClock.now - stopped < .seconds(1))
        #expect(await n1.stop() == 0)
        let logs = try await n1.wholeLog() + n2.wholeLog()
        #expect(logs.contains { $0.contains("cluster node lost") && $0.contains("lost_node=n3") })
    }

    @Test func aDatabaseOutageAnswers503ThenTheNodesRejoinByThemselves() async throws {
        // A server of this test's own: restarting the shared one would disturb the other tests.
        let postgres = TestPostgres(port: 55433)
        let url = try postgres.start() + "?sslmode=disable"
        defer { try? postgres.stop() }
        let schema = TestPostgres.freshSchema()
        let n1 = try await DaemonProcess(yaml: Self.config(node: "n1", url: url, schema: schema))
        let n2 = try await DaemonProcess(yaml: Self.config(node: "n2", url: url, schema: schema))
        #expect(await self.eventually { try await self.nodes(n1).keys.sorted() == ["n1", "n2"] })
        let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(n1.webSocketPort)/echo")

        try postgres.stop()
        // Unreachable: the cluster's view fails with a clear 503 within the operation timeout, never hangs...
        let started = ContinuousClock.now
        let (status, body) = try await n1.admin(.GET, "/v1/nodes")
        #expect(status == 503 && DaemonProcess.json(body)["type"] as? String == "cluster_unavailable", "\(status) \(body)")
        #expect(ContinuousClock.now - started < .seconds(6))
        _ = try await n1.logLine(containing: "cluster database unreachable")
        // ...while the node keeps serving its own connections.
        try await client.send(text: "still here")
        #expect(try await client.receive() == .text("still here"))

        // The database comes back (empty: a new data directory): both nodes rejoin with no manual step.
        try postgres.start()
        #expect(await self.eventually(30) { try await self.nodes(n2).keys.sorted() == ["n1", "n2"] })
        _ = try await n1.logLine(containing: "cluster database reachable again")
        try await client.close()
        #expect(await n1.stop() == 0)
        #expect(await n2.stop() == 0)
    }

    @Test func aNodeAloneIsTheWholeCluster() async throws {
        let daemon = try await DaemonProcess(yaml: "routes: [{path: /echo, handler: echo}]")
        let nodes = DaemonProcess.json(try await daemon.admin(.GET, "/v1/nodes").body)["nodes"] as? [[String: Any]] ?? []
        #expect(nodes.count == 1 && nodes.first?["state"] as? String == "up" && nodes.first?["version"] as? String == "0.9.0", "\(nodes)")
        #expect(await daemon.stop() == 0)
    }

    @Test func aBadClusterSectionNamesTheKey() async throws {
        for (yaml, key) in [
            ("cluster: {node_id: x}", "cluster.postgres"),
            ("cluster: {postgres: 'mysql://h/db'}", "cluster.postgres"),
            ("cluster: {postgres: 'postgres://u@h/db', heartbeat: 5s, node_timeout: 6s}", "cluster.node_timeout"),
            ("cluster: {postgres: 'postgres://u@h/db', schema: 'Bad-Name'}", "cluster.schema"),
        ] {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-\(UUID().uuidString).yaml")
            try (yaml + "\nroutes: [{path: /e, handler: echo}]").write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let (status, output) = try await DaemonProcess.run(["check", "--config", file.path])
            #expect(status == 1 && output.contains("config error at \(key):"), "\(yaml): \(output)")
        }
    }
}
