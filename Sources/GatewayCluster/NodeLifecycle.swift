/// One node's membership in the cluster, as a pure value: it decides when to join, heartbeat, rejoin after an
/// outage and leave, and the I/O side (``ClusterNode``) carries the actions out against PostgreSQL and reports
/// back. Times are the caller's monotonic clock readings (`Duration` since an arbitrary origin), so the machine is
/// tested with exact values.
///
/// The node's row in `nodes` is its claim to membership: written when it joins, its heartbeat refreshed every
/// ``heartbeat``, deleted when it leaves. Another node that sees a heartbeat older than the node timeout marks the
/// row `lost` and sweeps what the node had registered; a node that finds its own row lost or gone (it was paused,
/// or the database was unreachable for longer than the timeout) joins again and registers its live connections
/// anew, so that nothing it serves stays invisible.
public struct NodeLifecycle: Sendable, Hashable {
    /// Where the node is.
    public enum State: Sendable, Hashable {
        /// Not started.
        case idle
        /// Writing its row (the first time, or again after an outage).
        case joining(attempt: Int)
        /// A member: the last heartbeat was written at `since`.
        case up(lastBeat: Duration)
        /// The database could not be reached since `since`; the node keeps serving its own connections.
        case unreachable(since: Duration, attempt: Int)
        /// Deleting its row.
        case leaving
        /// Done.
        case left
    }

    /// What the I/O side does next.
    public enum Action: Sendable, Hashable {
        /// Write the node's row (state `up`) and register every live connection; report ``joined(now:)`` or
        /// ``failed(now:reason:)``.
        case join
        /// Refresh the heartbeat and mark nodes whose heartbeat is older than the node timeout `lost` (sweeping
        /// their rows); report ``heartbeatWritten(now:ownRowPresent:)`` or ``failed(now:reason:)``.
        case heartbeat
        /// Call ``tick(now:)`` again at `at`.
        case wake(at: Duration)
        /// Log that the database is unreachable (once per outage) with `reason`.
        case reportUnreachable(reason: String)
        /// Log that the database is back after `outage`.
        case reportReconnected(outage: Duration)
        /// Delete the node's row and what it registered; then report ``leftCluster()``.
        case leave
        /// Nothing to do.
        case none
    }

    /// Time between heartbeats.
    public let heartbeat: Duration
    /// How long after its last heartbeat a node counts as lost.
    public let nodeTimeout: Duration
    public private(set) var state = State.idle

    /// Creates the machine of a node that heartbeats every `heartbeat` and is lost `nodeTimeout` after its last one.
    public init(heartbeat: Duration, nodeTimeout: Duration) {
        precondition(heartbeat > .zero && nodeTimeout > heartbeat, "the node timeout must be longer than the heartbeat")
        self.heartbeat = heartbeat
        self.nodeTimeout = nodeTimeout
    }

    /// Whether the node counts itself a member (its row written, its heartbeat recent).
    public var isMember: Bool {
        if case .up = self.state { return true }
        return false
    }

    /// The node starts: join.
    public mutating func start() -> Action {
        guard case .idle = self.state else { return .none }
        self.state = .joining(attempt: 1)
        return .join
    }

    /// The node's row was written and its connections registered.
    public mutating func joined(now: Duration) -> [Action] {
        switch self.state {
        case .joining:
            self.state = .up(lastBeat: now)
            return [.wake(at: now + self.heartbeat)]
        case .unreachable(let since, _):
            self.state = .up(lastBeat: now)
            return [.reportReconnected(outage: now - since), .wake(at: now + self.heartbeat)]
        case .idle, .up, .leaving, .left:
            return []
        }
    }

    /// A timer set by ``Action/wake(at:)`` fired.
    public mutating func tick(now: Duration) -> Action {
        switch self.state {
        case .up(let lastBeat):
            return now >= lastBeat + self.heartbeat ? .heartbeat : .wake(at: lastBeat + self.heartbeat)
        case .unreachable(let since, let attempt):
            // Retry every heartbeat: rejoining writes the row and the connections again.
            self.state = .unreachable(since: since, attempt: attempt + 1)
            return .join
        case .idle, .joining, .leaving, .left:
            return .none
        }
    }

    /// The heartbeat was written. `ownRowPresent` is `false` when another node had already marked this one lost
    /// (its row gone or `lost`): then it joins again.
    public mutating func heartbeatWritten(now: Duration, ownRowPresent: Bool) -> Action {
        guard case .up = self.state else { return .none }
        guard ownRowPresent else {
            self.state = .joining(attempt: 1)
            return .join
        }
        self.state = .up(lastBeat: now)
        return .wake(at: now + self.heartbeat)
    }

    /// Joining or a heartbeat failed (the database is unreachable or refused): keep serving, retry every
    /// heartbeat, and say so once per outage.
    public mutating func failed(now: Duration, reason: String) -> [Action] {
        switch self.state {
        case .joining(let attempt):
            self.state = .unreachable(since: now, attempt: attempt)
            return [.reportUnreachable(reason: reason), .wake(at: now + self.heartbeat)]
        case .up:
            self.state = .unreachable(since: now, attempt: 0)
            return [.reportUnreachable(reason: reason), .wake(at: now + self.heartbeat)]
        case .unreachable:
            return [.wake(at: now + self.heartbeat)]
        case .idle, .leaving, .left:
            return []
        }
    }

    /// The node shuts down gracefully: leave at once (other nodes see it gone without waiting for the timeout).
    public mutating func stop() -> Action {
        switch self.state {
        case .idle, .left:
            self.state = .left
            return .none
        case .leaving:
            return .none
        case .joining, .up, .unreachable:
            self.state = .leaving
            return .leave
        }
    }

    /// The node's row is deleted (or the database could not be reached: the others will mark it lost).
    public mutating func leftCluster() {
        self.state = .left
    }
}
