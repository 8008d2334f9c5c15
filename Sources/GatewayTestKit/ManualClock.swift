import GatewayCore
import NIOConcurrencyHelpers
import NIOCore

/// A clock that moves only when a test says so, for the gateway's rate limits.
public final class ManualClock: GatewayClock {
    private let current: NIOLockedValueBox<NIODeadline>

    /// Creates a clock at an arbitrary start time.
    public init(start: NIODeadline = .uptimeNanoseconds(1_000_000_000)) {
        self.current = NIOLockedValueBox(start)
    }

    public func now() -> NIODeadline {
        self.current.withLockedValue { $0 }
    }

    /// Moves the clock forward.
    public func advance(by amount: TimeAmount) {
        self.current.withLockedValue { $0 = $0 + amount }
    }
}
