import NIOConcurrencyHelpers
import NIOCore

/// Says each kind of repeated log line at most once per ``interval``, with how many it left out since: a flood of
/// refusals, slow consumers or failed accepts cannot flood the log, and the counts still reach it.
final class LogThrottle: Sendable {
    let interval: TimeAmount
    /// Per kind: when it was last said, and how many were left out since.
    private let said = NIOLockedValueBox<[String: (at: NIODeadline, leftOut: Int)]>([:])

    init(interval: TimeAmount = .seconds(10)) {
        self.interval = interval
    }

    /// Whether a line of `kind` may be logged at `now`: how many were left out since the last one, or `nil` (this
    /// one is left out, and counted).
    func admit(_ kind: String, now: NIODeadline = .now()) -> Int? {
        self.said.withLockedValue { said in
            if let last = said[kind], now - last.at < self.interval {
                said[kind]?.leftOut += 1
                return nil
            }
            defer { said[kind] = (now, 0) }
            return said[kind]?.leftOut ?? 0
        }
    }
}
