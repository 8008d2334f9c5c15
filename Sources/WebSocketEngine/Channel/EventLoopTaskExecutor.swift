import NIOConcurrencyHelpers
import NIOCore

/// Runs Swift tasks on one NIO event loop. A connection's task that prefers its channel's event loop (with
/// `Task(executorPreference:)` or `addTask(executorPreference:)`) is resumed on the thread that produced its
/// events, and its sends go straight into the pipeline: no thread hop in either direction.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    /// The event loop the tasks run on.
    public let eventLoop: any EventLoop

    /// Creates an executor for `eventLoop`.
    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let shared = NIOLockedValueBox<[ObjectIdentifier: EventLoopTaskExecutor]>([:])

    /// The one executor of `eventLoop` (so that connections do not each carry their own).
    public static func of(_ eventLoop: any EventLoop) -> EventLoopTaskExecutor {
        self.shared.withLockedValue { executors in
            let key = ObjectIdentifier(eventLoop)
            if let executor = executors[key] { return executor }
            let executor = EventLoopTaskExecutor(eventLoop)
            executors[key] = executor
            return executor
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
