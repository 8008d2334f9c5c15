import Foundation

/// Runs blocking work (a `FileHandle` read, `Process.waitUntilExit()`) on a thread of its own and returns its result.
///
/// Neither the cooperative pool (as many threads as cores) nor Dispatch's global queues may carry it: with a few
/// daemons each blocking a reader there, every other test's work on them waited too (measured: a whole test run
/// stalled for 10 s, and webhook requests timed out).
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}
