import Foundation
import GatewayCluster
import GatewayTestKit
import Logging
import PostgresNIO

/// The shared PostgreSQL server of the tests (``TestPostgres``); each test works in a schema of its own, so tests
/// run side by side.
enum TestDatabase {
    /// Settings for a node `nodeID` in the fresh schema `schema`, with a fast heartbeat.
    static func settings(node nodeID: String, schema: String, heartbeat: Duration = .milliseconds(200), nodeTimeout: Duration = .seconds(1)) throws -> ClusterSettings {
        try ClusterSettings(url: TestPostgres.sharedURL, nodeID: nodeID, heartbeat: heartbeat, nodeTimeout: nodeTimeout, schema: schema)
    }

    static func freshSchema() -> String { TestPostgres.freshSchema() }

    /// Runs one SQL statement on the server, with a client of its own.
    static func execute(_ sql: String) async throws {
        let settings = try Self.settings(node: "test", schema: "public")
        let client = PostgresClient(configuration: settings.postgres, backgroundLogger: Self.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await client.query(PostgresQuery(unsafeSQL: sql), logger: Self.logger)
        }
    }

    static let logger: Logger = {
        var logger = Logger(label: "cluster-test")
        logger.logLevel = ProcessInfo.processInfo.environment["CLUSTER_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }()
}
