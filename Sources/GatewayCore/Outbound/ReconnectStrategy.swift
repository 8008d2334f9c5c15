import NIOCore

/// How an outbound socket reconnects after its connection is lost (or a connect attempt fails).
public enum ReconnectStrategy: Sendable, Hashable {
    /// Never reconnect: the socket closes with its connection.
    case none
    /// Retry every `interval`, at most `count` times in a row.
    case fixed(interval: TimeAmount, count: Int)
    /// Retry every `interval` until the socket is closed deliberately.
    case forever(interval: TimeAmount)
    /// Retry after `initialInterval`, multiplying the wait by `growth` after each failure up to `maxInterval`, at
    /// most `maxRetries` times in a row. `jitter` (0 to 1) spreads each wait by up to that fraction either way, so
    /// that many sockets cut off together do not come back in lockstep.
    case exponential(initialInterval: TimeAmount, growth: Double, maxInterval: TimeAmount, maxRetries: Int, jitter: Double)

    /// The wait before retry number `retry` (1 for the first retry after a loss), or `nil` when the strategy gives up.
    /// `random` returns a number in 0..<1 (injected for tests).
    public func delay(beforeRetry retry: Int, random: () -> Double = { Double.random(in: 0..<1) }) -> TimeAmount? {
        precondition(retry >= 1, "retries count from 1")
        switch self {
        case .none:
            return nil
        case .fixed(let interval, let count):
            return retry <= count ? interval : nil
        case .forever(let interval):
            return interval
        case .exponential(let initial, let growth, let maxInterval, let maxRetries, let jitter):
            guard retry <= maxRetries else { return nil }
            let base = min(Double(initial.nanoseconds) * pow(growth, Double(retry - 1)), Double(maxInterval.nanoseconds))
            let spread = base * min(max(jitter, 0), 1) * (random() * 2 - 1)
            // With jitter a wait can reach twice `maxInterval`: past `Int64.max` nanoseconds it is capped there
            // (converting a larger `Double` would trap).
            return .nanoseconds(Int64(min(max(0, base + spread).rounded(), Double(Int64.max).nextDown)))
        }
    }

    /// Whether the strategy ever retries.
    public var retries: Bool {
        if case .none = self { return false }
        return true
    }

    /// The most retries in a row, or `nil` for no bound.
    public var maxRetries: Int? {
        switch self {
        case .none: return 0
        case .fixed(_, let count): return count
        case .forever: return nil
        case .exponential(_, _, _, let maxRetries, _): return maxRetries
        }
    }
}

/// What happens to messages sent to an outbound socket while it is connecting or reconnecting.
public struct ReconnectQueuePolicy: Sendable, Hashable {
    /// What a send does when the queue is full.
    public enum WhenFull: String, Sendable, Hashable, CaseIterable {
        /// The new message fails with ``GatewayError/reconnectQueueFull(_:limit:)``.
        case rejectNew = "reject_new"
        /// The oldest queued message fails (with the same error) to make room for the new one.
        case dropOldest = "drop_oldest"
    }

    /// How many messages may wait (0: sends fail at once while the socket is not connected).
    public var size: Int
    /// What a send does when `size` messages already wait.
    public var whenFull: WhenFull

    /// Creates a policy (default: 1,000 messages, new ones rejected when full).
    public init(size: Int = 1_000, whenFull: WhenFull = .rejectNew) {
        precondition(size >= 0, "the queue size cannot be negative")
        self.size = size
        self.whenFull = whenFull
    }
}

private func pow(_ base: Double, _ exponent: Double) -> Double {
    var result = 1.0
    var remaining = Int(exponent)
    while remaining > 0 {
        result *= base
        remaining -= 1
        if result > 1e18 { return result }
    }
    return result
}
