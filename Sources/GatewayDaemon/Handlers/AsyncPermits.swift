import NIOConcurrencyHelpers

/// A counting semaphore for async code.
final class AsyncPermits: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: NIOLockedValueBox<State>

    init(_ count: Int) {
        self.state = NIOLockedValueBox(State(available: count))
    }

    func with<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { continuation in
            let granted = self.state.withLockedValue { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
        defer {
            let next = self.state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                if state.waiters.isEmpty {
                    state.available += 1
                    return nil
                }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
