/// Takes a connection's events for ``WebSocket/deliverEvents(consumer:)``: each event first synchronously, on the
/// connection's event loop (as soon as it is read when the consumer is between events; otherwise once the earlier
/// ones are done); whatever cannot be done without suspending is finished in a task on that loop.
///
/// A consumer that answers from memory (an echo, a counter, a reply built from the message) does all its work in
/// ``take(_:)``: no task is resumed for the event, and the answer leaves with the other answers to the same read.
///
/// Events come one at a time and in order: ``take(_:)`` is never called while an earlier event's ``finish()`` is
/// running, and the close event (``WebSocketEvent/close(_:)``) is the last one.
public protocol WebSocketEventConsumer: Sendable {
    /// Takes `event` on the connection's event loop (it must not block).
    ///
    /// - Returns: `true` when done with it; `false` to have ``finish()`` called, in a task on the event loop, before
    ///   the next event is taken.
    func take(_ event: WebSocketEvent) -> Bool

    /// Finishes the event for which ``take(_:)`` last returned `false`.
    func finish() async
}

/// The callback of ``WebSocket/deliverEvents(to:)`` as a consumer: every event is handed to it in the task.
///
/// `@unchecked Sendable` because ``WebSocketEventConsumer`` must be `Sendable` (the consumer's task holds it) while
/// `event` is a `var` handed from `take` to `finish`; both run on the connection's event loop only (`take` there,
/// `finish` in a task that prefers its executor), so no lock is needed, and an `NIOLoopBoundBox` would add an
/// allocation per connection and a check per event.
final class CallbackConsumer: WebSocketEventConsumer, @unchecked Sendable {
    private let body: @Sendable (WebSocketEvent) async -> Void
    private var event: WebSocketEvent?

    init(_ body: @escaping @Sendable (WebSocketEvent) async -> Void) {
        self.body = body
    }

    func take(_ event: WebSocketEvent) -> Bool {
        self.event = event
        return false
    }

    func finish() async {
        guard let event = self.event else { return }
        self.event = nil
        await self.body(event)
    }
}
