import NIOConcurrencyHelpers
import NIOCore
import WebSocketEngine

/// The tasks that serve outbound sockets, owned by their ``Gateway``: each starts on its socket's event loop when
/// the socket opens, and ``Gateway/run()`` does not return before every one has ended.
///
/// They are not children of `run()`'s task group because a socket may be opened from any task (the management
/// API's, a handler's) while `run()` waits; the tracker is what makes them the gateway's.
final class SessionTasks: Sendable {
    private struct State {
        var running = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    /// Starts `body` in a task on `eventLoop`'s executor, counted until it returns.
    func start(on eventLoop: any EventLoop, _ body: @escaping @Sendable () async -> Void) {
        self.state.withLockedValue { $0.running += 1 }
        Task(executorPreference: EventLoopTaskExecutor.of(eventLoop)) {
            await body()
            self.ended()
        }
    }

    private func ended() {
        let waiters: [CheckedContinuation<Void, Never>] = self.state.withLockedValue { state in
            state.running -= 1
            guard state.running == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once no task is running.
    func waitUntilAllEnded() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let done = self.state.withLockedValue { state in
                if state.running == 0 { return true }
                state.waiters.append(waiter)
                return false
            }
            if done { waiter.resume() }
        }
    }
}
