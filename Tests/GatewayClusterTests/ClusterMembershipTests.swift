import GatewayCluster
import Logging
import ServiceLifecycle
import Testing

/// Nodes joining, heartbeating, marked lost and leaving, against a real PostgreSQL server.
@Suite("Cluster membership against PostgreSQL")
struct ClusterMembershipTests {
    /// Runs the nodes in a service group while `body` runs, then shuts the group down gracefully (each node
    /// leaves the cluster).
    private func running<T: Sendable>(_ nodes: [ClusterNode], _ body: () async throws -> T) async throws -> T {
        let group = ServiceGroup(services: nodes, gracefulShutdownSignals: [], logger: TestDatabase.logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try result.get()
        }
    }

    private func node(_ id: String, schema: String, connections: Int = 0) throws -> ClusterNode {
        ClusterNode(settings: try TestDatabase.settings(node: id, schema: schema), version: "test", logger: TestDatabase.logger) { connections }
    }

    /// Polls `condition` every 50 ms for up to `seconds` (an error counts as not yet: the nodes may not have
    /// created the tables yet).
    private func eventually(_ seconds: Double = 30, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func nodesJoinListEachOtherAndLeaveAtOnceOnShutdown() async throws {
        let schema = TestDatabase.freshSchema()
        let a = try self.node("a", schema: schema, connections: 3)
        let b = try self.node("b", schema: schema, connections: 5)
        try await self.running([a, b]) {
            #expect(try await self.eventually { try await a.nodes().map(\.nodeID) == ["a", "b"] })
            let nodes = try await b.nodes()
            #expect(nodes.allSatisfy { $0.state == .up && $0.version == "test" })
            #expect(try await self.eventually { try await a.nodes().map(\.connections) == [3, 5] })
            #expect(a.isMember && b.isMember)
        }
        // Both left when their tasks were cancelled: a third node sees nobody.
        let c = try self.node("c", schema: schema)
        try await self.running([c]) { () async throws in
            #expect(try await self.eventually { try await c.nodes().map(\.nodeID) == ["c"] })
        }
    }

    @Test func aSilentNodeIsMarkedLostAfterTheNodeTimeout() async throws {
        let schema = TestDatabase.freshSchema()
        let watcher = try self.node("watcher", schema: schema)
        try await self.running([watcher]) {
            // A node that joined and stopped heartbeating (as a process killed with SIGKILL does): its row, written
            // by hand.
            #expect(try await self.eventually { watcher.isMember })
            try await TestDatabase.execute("INSERT INTO \(schema).nodes (node_id, state, version) VALUES ('ghost', 'up', 'old')")
            #expect(try await watcher.nodes().first { $0.nodeID == "ghost" }?.state == .up)
            let start = ContinuousClock.now
            #expect(try await self.eventually { try await watcher.nodes().first { $0.nodeID == "ghost" }?.state == .lost })
            // Not before the node timeout (1 s here), and soon after it (a heartbeat later).
            #expect(ContinuousClock.now - start > .milliseconds(500))
        }
    }
}
