import NIOCore

/// Hands values from server-side code (handlers, hooks) to the test that waits for them, in order.
/// Any number of producers; one consumer at a time.
public final class TestMailbox<Value: Sendable>: Sendable {
    private let stream: AsyncStream<Value>
    private let continuation: AsyncStream<Value>.Continuation

    /// Creates an empty mailbox.
    public init() {
        (self.stream, self.continuation) = AsyncStream.makeStream()
    }

    /// Puts a value in.
    public func put(_ value: Value) { self.continuation.yield(value) }

    /// Waits for the next value.
    public func take() async -> Value? {
        var iterator = self.stream.makeAsyncIterator()
        return await iterator.next()
    }
}
