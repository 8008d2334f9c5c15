import NIOConcurrencyHelpers

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
///
/// At the deadline `body` is cancelled and abandoned: a wait that ignores cancellation (`EventLoopFuture.get()`, a
/// connect in progress) fails the test at the deadline instead of holding the whole run until it ends.
public func within<T: Sendable>(
    _ seconds: Double = 10, _ what: String = "an event", _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = WithinRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(
                continuation,
                work: Task {
                    do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
                },
                timer: Task {
                    try? await Task.sleep(for: .seconds(seconds))
                    race.finish(.failure(TimedOut(what: what)))
                })
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The state of one ``within(_:_:_:)``: the first outcome resumes its caller and cancels both tasks.
private final class WithinRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var tasks: [Task<Void, Never>] = []
        /// An outcome that came before the continuation was stored (a quick body, or a cancellation).
        var early: Result<T, any Error>?
    }
    private let state = NIOLockedValueBox(State())

    func start(_ continuation: CheckedContinuation<T, any Error>, work: Task<Void, Never>, timer: Task<Void, Never>) {
        let early: Result<T, any Error>? = self.state.withLockedValue { state in
            state.tasks = [work, timer]
            guard let early = state.early else {
                state.continuation = continuation
                return nil
            }
            return early
        }
        if let early {
            work.cancel()
            timer.cancel()
            continuation.resume(with: early)
        }
    }

    func finish(_ outcome: Result<T, any Error>) {
        let (continuation, tasks) = self.state.withLockedValue { state in
            guard let continuation = state.continuation else {
                if state.tasks.isEmpty && state.early == nil { state.early = outcome }
                return (CheckedContinuation<T, any Error>?.none, [Task<Void, Never>]())
            }
            state.continuation = nil
            return (continuation, state.tasks)
        }
        guard let continuation else { return }
        for task in tasks { task.cancel() }
        continuation.resume(with: outcome)
    }
}
