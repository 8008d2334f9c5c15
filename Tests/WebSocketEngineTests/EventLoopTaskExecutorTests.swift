import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSocketEngine

@Suite("EventLoopTaskExecutor: tasks on a NIO event loop")
struct EventLoopTaskExecutorTests {
    @Test func oneExecutorPerLoopRunsTasksOnItsThreadInOrder() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let executor = EventLoopTaskExecutor.of(loop)
        #expect(EventLoopTaskExecutor.of(loop) === executor)
        let started = NIOLockedValueBox<[Int]>([])
        let offLoop = NIOLockedValueBox(0)
        await withTaskGroup(of: Void.self) { tasks in
            for index in 0..<200 {
                tasks.addTask(executorPreference: executor) {
                    if !loop.inEventLoop { offLoop.withLockedValue { $0 += 1 } }
                    started.withLockedValue { $0.append(index) }
                    // Suspends and is resumed through the executor again.
                    await Task.yield()
                    if !loop.inEventLoop { offLoop.withLockedValue { $0 += 1 } }
                }
            }
        }
        // Jobs are run one per `execute`, in the order they were enqueued.
        #expect(started.withLockedValue { $0 } == Array(0..<200))
        #expect(offLoop.withLockedValue { $0 } == 0)
        try await group.shutdownGracefully()
    }
}
