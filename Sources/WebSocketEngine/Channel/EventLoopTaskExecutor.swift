import NIOConcurrencyHelpers
import NIOCore

/// Runs Swift tasks on one NIO event loop. A connection's task that prefers its channel's event loop (with
/// `Task(executorPreference:)` or `addTask(executorPreference:)`) is resumed on the thread that produced its
/// events, and its sends go straight into the pipeline: no thread hop in either direction.
///
/// Enqueuing a job allocates nothing: jobs wait in a ring buffer and each one is run by the same, prebuilt
/// closure submitted to the event loop, so jobs keep their order relative to everything else the loop runs.
///
/// `@unchecked Sendable` because of ``runNext``, a `var` only so that `init` can make a closure that captures
/// `self`; it is set once in `init`, before the executor is shared, and only read after. The job queue is behind
/// its lock.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    /// The event loop the tasks run on.
    public let eventLoop: any EventLoop

    private let jobs = NIOLockedValueBox(CircularBuffer<UnownedJob>(initialCapacity: 64))
    // Set once in `init`; a closure made once so that `enqueue` does not allocate one per job.
    private var runNext: (@Sendable () -> Void)!

    /// Executors are made only by ``of(_:)``, one per event loop, and kept for the life of the process (the
    /// prebuilt closure holds its executor).
    private init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.runNext = { self.runNextJob() }
    }

    private static let shared = PerEventLoop { EventLoopTaskExecutor($0) }

    /// The one executor of `eventLoop` (so that connections do not each carry their own).
    public static func of(_ eventLoop: any EventLoop) -> EventLoopTaskExecutor {
        self.shared.of(eventLoop)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.jobs.withLockedValue { $0.append(job) }
        self.eventLoop.execute(self.runNext)
    }

    /// Runs the oldest waiting job: one per `execute`, so the order matches the order of `enqueue` calls.
    private func runNextJob() {
        guard let job = self.jobs.withLockedValue({ $0.popFirst() }) else { return }
        job.runSynchronously(on: self.asUnownedTaskExecutor())
    }
}
