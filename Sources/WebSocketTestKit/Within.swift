/// A wait that ran out of time.
public struct TimedOut: Error, CustomStringConvertible {
    /// What was waited for.
    public var what: String
    public var description: String { "timed out waiting for \(self.what)" }

    /// A timeout waiting for `what`.
    public init(what: String) {
        self.what = what
    }
}

/// Waits for `body`, failing with ``TimedOut`` after `seconds` (so that a test that misses an event fails instead of
/// hanging).
public func within<T: Sendable>(
    _ seconds: Double = 10, _ what: String = "an event", _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut(what: what) }
        return value
    }
}
