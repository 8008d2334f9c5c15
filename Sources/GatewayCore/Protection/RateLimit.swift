import NIOCore

/// An inbound message rate limit per connection: a token bucket of `burst` tokens refilled at
/// `messagesPerSecond`.
public struct RateLimit: Sendable, Hashable {
    /// What happens to a message over the limit.
    public enum Action: String, Sendable, Hashable {
        /// Close the connection with 1008 and a reason.
        case close
        /// Drop the message and report an error event to the handler.
        case drop
    }

    /// Sustained messages per second.
    public var messagesPerSecond: Double
    /// Messages allowed in a burst.
    public var burst: Int
    /// What to do on excess.
    public var onExceed: Action

    /// Creates a limit.
    public init(messagesPerSecond: Double, burst: Int, onExceed: Action = .close) {
        precondition(messagesPerSecond > 0 && burst > 0, "a rate limit needs a positive rate and burst")
        self.messagesPerSecond = messagesPerSecond
        self.burst = burst
        self.onExceed = onExceed
    }
}

/// The token bucket behind ``RateLimit``; time is passed in, so tests drive it with a manual clock.
struct TokenBucket: Sendable {
    let limit: RateLimit
    private var tokens: Double
    private var updatedAt: NIODeadline

    init(limit: RateLimit, now: NIODeadline) {
        self.limit = limit
        self.tokens = Double(limit.burst)
        self.updatedAt = now
    }

    /// Takes one token if there is one.
    mutating func take(now: NIODeadline) -> Bool {
        let elapsed = Double(max(0, (now - self.updatedAt).nanoseconds)) / 1_000_000_000
        self.tokens = min(Double(self.limit.burst), self.tokens + elapsed * self.limit.messagesPerSecond)
        self.updatedAt = now
        guard self.tokens >= 1 else { return false }
        self.tokens -= 1
        return true
    }
}

/// What the gateway does when a connection has been idle for its idle timeout.
public enum IdleAction: String, Sendable, Hashable {
    /// Tell the handler only.
    case notify
    /// Tell the handler, then close with 1001.
    case close
}

/// What the gateway does when a connection's outbound queue is full.
public enum SlowConsumerPolicy: String, Sendable, Hashable {
    /// Close the connection with 1008 "slow consumer".
    case close
    /// Drop the new message and report it as a failure.
    case drop
}

/// The time source of the gateway's rate limits; tests substitute a manual clock.
public protocol GatewayClock: Sendable {
    /// A monotonic now.
    func now() -> NIODeadline
}

/// The system's monotonic clock.
public struct SystemGatewayClock: GatewayClock {
    /// Creates the clock.
    public init() {}
    public func now() -> NIODeadline { .now() }
}
