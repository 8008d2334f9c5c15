import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import ServiceLifecycle

/// A cluster operation that could not be carried out, typed until the edge that renders it.
public struct ClusterError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of failure.
    public enum Kind: String, Sendable, Hashable {
        /// The database did not answer within the operation's time, or refused.
        case databaseUnavailable = "cluster_unavailable"
    }

    /// Which failure.
    public var kind: Kind
    /// What happened, in a few words.
    public var reason: String

    public var description: String { "the cluster database is unavailable: \(self.reason)" }
}

/// One node's membership in the cluster, through PostgreSQL: runs the database client and ``NodeLifecycle``'s
/// decisions (join, heartbeat, mark silent nodes lost, rejoin after an outage, leave on a graceful shutdown), and
/// answers ``nodes()``. A `Service`: run it beside the gateway; it never stops the node from serving its own
/// connections, whatever the database does.
public final class ClusterNode: Service {
    /// The settings it runs with.
    public let settings: ClusterSettings
    private let version: String
    private let connectionCount: @Sendable () -> Int
    private let logger: Logger
    let client: PostgresClient
    let store: ClusterStore
    private let lifecycle: NIOLockedValueBox<NodeLifecycle>
    /// How long a database operation may take before it counts as failed (the node's membership waits no longer,
    /// and an API call answers 503 after it).
    public let operationTimeout: Duration

    /// Creates a node; `connectionCount` reports how many connections it serves (written with each heartbeat).
    public init(settings: ClusterSettings, version: String, logger: Logger, connectionCount: @escaping @Sendable () -> Int) {
        self.settings = settings
        self.version = version
        self.logger = logger
        self.connectionCount = connectionCount
        self.client = PostgresClient(configuration: settings.postgres, backgroundLogger: logger)
        self.store = ClusterStore(client: self.client, schema: settings.schema, logger: logger)
        self.lifecycle = NIOLockedValueBox(NodeLifecycle(heartbeat: settings.heartbeat, nodeTimeout: settings.nodeTimeout))
        self.operationTimeout = min(max(settings.nodeTimeout / 2, .seconds(2)), .seconds(5))
    }

    /// Whether the node counts itself a member right now (joined, its last heartbeat written).
    public var isMember: Bool { self.lifecycle.withLockedValue { $0.isMember } }

    /// Every node of the cluster.
    ///
    /// - Throws: ``ClusterError`` when the database does not answer within ``operationTimeout``.
    public func nodes() async throws(ClusterError) -> [NodeInfo] {
        try await self.withDeadline("listing the nodes") { try await self.store.nodes() }
    }

    /// Runs the membership until the service group shuts down gracefully (the node then leaves the cluster at
    /// once) or the task is cancelled (it stops without leaving; the others mark it lost after the node timeout).
    public func run() async {
        // The database client runs in a task of its own, detached so that it does not inherit the service group's
        // graceful shutdown: it must outlive the membership's last statement, the one that leaves.
        let client = self.client
        let pool = Task.detached { await client.run() }
        await withTaskCancellationHandler {
            await self.membership()
        } onCancel: {
            pool.cancel()
        }
        pool.cancel()
        await pool.value
    }

    /// Carries out the lifecycle's actions in order until the node stops, then leaves.
    private func membership() async {
        let clock = ContinuousClock()
        let origin = clock.now
        let now = { clock.now - origin }
        var pending = [self.lifecycle.withLockedValue { $0.start() }]
        while !pending.isEmpty {
            switch pending.removeFirst() {
            case .join:
                pending += await self.join(now: now)
            case .heartbeat:
                pending += await self.heartbeat(now: now)
            case .wake(let at):
                if await self.sleep(until: origin + at) { pending = [] } else { pending.append(self.lifecycle.withLockedValue { $0.tick(now: now()) }) }
            case .reportUnreachable(let reason):
                self.logger.error(
                    "cluster database unreachable; serving this node's connections only",
                    metadata: ["error": "\(reason)", "url": "\(self.settings.displayURL)"])
            case .reportReconnected(let outage):
                self.logger.notice("cluster database reachable again; node rejoined", metadata: ["outage": "\(outage)"])
            case .leave, .none:
                break
            }
        }
        await self.leave()
    }

    /// Sleeps until `deadline`; returns `true` when the node is shutting down (cancelled or graceful shutdown).
    private func sleep(until deadline: ContinuousClock.Instant) async -> Bool {
        _ = try? await cancelWhenGracefulShutdown {
            try await Task.sleep(until: deadline, clock: .continuous)
        }
        return Task.isCancelled || Task.isShuttingDownGracefully
    }

    private func join(now: () -> Duration) async -> [NodeLifecycle.Action] {
        do {
            try await self.withDeadline("joining") {
                try await self.store.migrate()
                try await self.store.join(node: self.settings.nodeID, version: self.version, connections: self.connectionCount())
            }
            self.logger.info("joined the cluster", metadata: ["node": "\(self.settings.nodeID)", "url": "\(self.settings.displayURL)"])
            return self.lifecycle.withLockedValue { $0.joined(now: now()) }
        } catch {
            return self.lifecycle.withLockedValue { $0.failed(now: now(), reason: error.reason) }
        }
    }

    private func heartbeat(now: () -> Duration) async -> [NodeLifecycle.Action] {
        do {
            let (present, lost) = try await self.withDeadline("heartbeat") {
                let present = try await self.store.heartbeat(node: self.settings.nodeID, connections: self.connectionCount())
                let lost = try await self.store.markLost(timeout: self.settings.nodeTimeout, forgetAfter: self.settings.nodeTimeout * 30)
                return (present, lost)
            }
            for node in lost {
                self.logger.warning("cluster node lost: no heartbeat within the node timeout", metadata: ["lost_node": "\(node)", "node_timeout": "\(self.settings.nodeTimeout)"])
            }
            if !present {
                self.logger.warning("this node was marked lost by the cluster (its heartbeat was late); joining again", metadata: ["node": "\(self.settings.nodeID)"])
            }
            return [self.lifecycle.withLockedValue { $0.heartbeatWritten(now: now(), ownRowPresent: present) }]
        } catch {
            return self.lifecycle.withLockedValue { $0.failed(now: now(), reason: error.reason) }
        }
    }

    private func leave() async {
        guard self.lifecycle.withLockedValue({ $0.stop() }) == .leave else { return }
        do {
            try await self.withDeadline("leaving") { try await self.store.leave(node: self.settings.nodeID, delete: true) }
            self.logger.info("left the cluster", metadata: ["node": "\(self.settings.nodeID)"])
        } catch {
            self.logger.warning("could not leave the cluster; the other nodes will mark this node lost after the node timeout", metadata: ["error": "\(error.reason)"])
        }
        self.lifecycle.withLockedValue { $0.leftCluster() }
    }

    /// Runs `body` within ``operationTimeout`` (in a task of its own, so that a shutdown does not cut a leave short).
    func withDeadline<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws(ClusterError) -> T {
        let timeout = self.operationTimeout
        let outcome: Result<T, ClusterError> = await withTaskGroup(of: Result<T, ClusterError>?.self) { group in
            group.addTask {
                do {
                    return .success(try await body())
                } catch {
                    return .failure(ClusterError(kind: .databaseUnavailable, reason: "\(what) failed: \(Self.describe(error))"))
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return await group.next()! ?? .failure(ClusterError(kind: .databaseUnavailable, reason: "\(what) took longer than \(timeout)"))
        }
        return try outcome.get()
    }

    /// A database error in a few words (postgres-nio hides the server's message from `description` by design).
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            return "\(error.code)"
        }
        return "\(error)"
    }
}

extension Error {
    fileprivate var reason: String { (self as? ClusterError)?.reason ?? "\(self)" }
}
