import FoundationEssentials
import Logging
import PostgresNIO

/// A node of the cluster as `GET /v1/nodes` shows it.
public struct NodeInfo: Sendable, Hashable, Codable {
    /// Where a node is.
    public enum State: String, Sendable, Hashable, Codable {
        /// Heartbeating.
        case up
        /// Shutting down gracefully.
        case leaving
        /// Its heartbeat stopped for longer than the node timeout; what it registered was swept.
        case lost
    }

    /// The node's id.
    public var nodeID: String
    /// Where it is.
    public var state: State
    /// Its version of wsgate.
    public var version: String
    /// How many connections it serves (as of its last heartbeat).
    public var connections: Int
    /// When it joined, in milliseconds since the epoch (the database's clock).
    public var startedAt: Int64
    /// Its last heartbeat, in milliseconds since the epoch (the database's clock).
    public var lastHeartbeat: Int64

    /// Creates a record.
    public init(nodeID: String, state: State, version: String, connections: Int, startedAt: Int64, lastHeartbeat: Int64) {
        self.nodeID = nodeID
        self.state = state
        self.version = version
        self.connections = connections
        self.startedAt = startedAt
        self.lastHeartbeat = lastHeartbeat
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id"
        case state, version, connections
        case startedAt = "started_at"
        case lastHeartbeat = "last_heartbeat"
    }
}

/// The cluster's tables in PostgreSQL and the statements on them. Every time is the database's clock (`now()`),
/// so the nodes' clocks need not agree.
///
/// Tables (in ``ClusterSettings/schema``):
/// - `nodes`: one row per node: `node_id`, `state` (`up`, `leaving`, `lost`), `version`, `connections`,
///   `started_at`, `heartbeat_at`.
struct ClusterStore: Sendable {
    let client: PostgresClient
    let schema: String
    let logger: Logger

    /// Creates the schema and tables when they are missing. Nodes starting together serialise on an advisory lock
    /// (concurrent `CREATE ... IF NOT EXISTS` can still collide in PostgreSQL's catalogs).
    func migrate() async throws {
        let schema = self.schema
        try await self.client.withTransaction(logger: self.logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(schema)))", logger: self.logger)
            try await connection.query("CREATE SCHEMA IF NOT EXISTS \(unescaped: schema)", logger: self.logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS \(unescaped: schema).nodes (
                    node_id text PRIMARY KEY,
                    state text NOT NULL CHECK (state IN ('up', 'leaving', 'lost')),
                    version text NOT NULL,
                    connections integer NOT NULL DEFAULT 0,
                    started_at timestamptz NOT NULL DEFAULT now(),
                    heartbeat_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: self.logger)
        }
    }

    /// Writes the node's row as `up` (a new row, or one found lost or leaving).
    func join(node: String, version: String, connections: Int) async throws {
        try await self.client.query(
            """
            INSERT INTO \(unescaped: self.schema).nodes (node_id, state, version, connections)
            VALUES (\(node), 'up', \(version), \(connections))
            ON CONFLICT (node_id) DO UPDATE SET state = 'up', version = EXCLUDED.version,
                connections = EXCLUDED.connections, heartbeat_at = now(),
                started_at = CASE WHEN \(unescaped: self.schema).nodes.state = 'up' THEN \(unescaped: self.schema).nodes.started_at ELSE now() END
            """, logger: self.logger)
    }

    /// Refreshes the node's heartbeat; returns `false` when its row is gone or no longer `up` (another node
    /// marked it lost).
    func heartbeat(node: String, connections: Int) async throws -> Bool {
        let rows = try await self.client.query(
            """
            UPDATE \(unescaped: self.schema).nodes SET heartbeat_at = now(), connections = \(connections)
            WHERE node_id = \(node) AND state = 'up' RETURNING 1
            """, logger: self.logger)
        var present = false
        for try await _ in rows { present = true }
        return present
    }

    /// Marks `lost` every other node whose heartbeat is older than `timeout`, and forgets lost nodes after
    /// `forgetAfter`; returns the ids it marked.
    func markLost(timeout: Duration, forgetAfter: Duration) async throws -> [String] {
        let seconds = Self.seconds(timeout)
        let rows = try await self.client.query(
            """
            UPDATE \(unescaped: self.schema).nodes SET state = 'lost'
            WHERE state IN ('up', 'leaving') AND heartbeat_at < now() - make_interval(secs => \(seconds))
            RETURNING node_id
            """, logger: self.logger)
        var lost: [String] = []
        for try await node in rows.decode(String.self) { lost.append(node) }
        try await self.client.query(
            """
            DELETE FROM \(unescaped: self.schema).nodes
            WHERE state = 'lost' AND heartbeat_at < now() - make_interval(secs => \(Self.seconds(forgetAfter)))
            """, logger: self.logger)
        return lost
    }

    /// Marks the node `leaving` (it drains its connections) or deletes its row (it is gone).
    func leave(node: String, delete: Bool) async throws {
        if delete {
            try await self.client.query("DELETE FROM \(unescaped: self.schema).nodes WHERE node_id = \(node)", logger: self.logger)
        } else {
            try await self.client.query(
                "UPDATE \(unescaped: self.schema).nodes SET state = 'leaving' WHERE node_id = \(node)", logger: self.logger)
        }
    }

    /// Every node, by id.
    func nodes() async throws -> [NodeInfo] {
        let rows = try await self.client.query(
            """
            SELECT node_id, state, version, connections,
                (extract(epoch FROM started_at) * 1000)::bigint, (extract(epoch FROM heartbeat_at) * 1000)::bigint
            FROM \(unescaped: self.schema).nodes ORDER BY node_id
            """, logger: self.logger)
        var nodes: [NodeInfo] = []
        for try await (id, state, version, connections, started, beat) in rows.decode((String, String, String, Int, Int64, Int64).self) {
            nodes.append(
                NodeInfo(
                    nodeID: id, state: NodeInfo.State(rawValue: state) ?? .lost, version: version, connections: connections,
                    startedAt: started, lastHeartbeat: beat))
        }
        return nodes
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
