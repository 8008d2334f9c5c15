import NIOCore
import NIOPosix
import Testing
import WebSocketTestKit

/// The test kit's deadline: it must fail a test at the deadline even when what it waits for ignores cancellation,
/// or one missed event holds the whole run.
@Suite("WebSocketTestKit: within")
struct WithinTests {
    @Test func returnsTheBodysValueAndError() async throws {
        #expect(try await within(5, "a value") { 42 } == 42)
        await #expect(throws: TimedOut.self) {
            try await within(5, "an error") { throw TimedOut(what: "the body's own error") }
        }
    }

    @Test func abandonsAWaitThatIgnoresCancellationAtTheDeadline() async throws {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Int.self)
        do {
            // `EventLoopFuture.get()` does not end when cancelled.
            _ = try await within(0.2, "a promise nobody completes") { try await promise.futureResult.get() }
            Issue.record("expected a timeout")
        } catch let error as TimedOut {
            #expect(error.what == "a promise nobody completes")
        }
        promise.succeed(0)
    }

    @Test func endsWhenTheWaitingTaskIsCancelled() async throws {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Int.self)
        let waiting = Task { try await within(600, "a promise") { try await promise.futureResult.get() } }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        promise.succeed(0)
    }
}
