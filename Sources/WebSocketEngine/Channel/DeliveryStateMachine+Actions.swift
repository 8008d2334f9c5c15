import NIOCore

/// What ``DeliveryStateMachine`` returns and takes: the handler's actions, the consumer task's steps, and the kinds
/// that matter to its decisions.
extension DeliveryStateMachine {
    /// Where events go.
    enum Sink: Equatable {
        /// The application has not chosen yet: events are held.
        case undecided
        /// An `AsyncSequence` (``WebSocket/events``).
        case sequence
        /// A consumer (``WebSocket/deliverEvents(consumer:)``).
        case consumer
        /// The consumer is done with the last event.
        case done
    }

    /// What an event means for the close barrier.
    enum EventKind: Equatable {
        case message
        case error
        case close

        init(_ event: WebSocketEvent) {
            switch event {
            case .close: self = .close
            case .error: self = .error
            default: self = .message
            }
        }
    }

    /// What the handler does next.
    enum Action: Equatable {
        case none
        /// Ask the channel for more input.
        case read
        /// Flush the written output, then ask for input if `thenRead`.
        case flush(thenRead: Bool)
        /// Flush at the end of the event loop's current batch of tasks (then call ``scheduledFlushRan()``).
        case scheduleFlush
        /// Write the sends waiting for room, then call ``waitingWritesDrained()``.
        case drainWaitingWrites
        /// Keep the event until the application chooses how to take it, or until the consumer's task takes it.
        case hold(WebSocketEvent)
        /// Hand the event to the sequence (then report a full sequence with ``sequenceFull()`` or a dropped event
        /// with ``sequenceDropped()``).
        case yield(WebSocketEvent)
        /// Hand the event to the consumer at once, on the event loop.
        case take(WebSocketEvent)
        /// Commit the close (the answer to the peer's close, or the failure's close) after the barrier; ask for input
        /// if `thenRead` (a client waits for the server to close TCP).
        case finishClose(thenRead: Bool)
        /// Schedule ``barrierTimerFired()`` after the delay (on the event loop's clock).
        case startBarrierTimer(in: TimeAmount)
        /// Start the consumer's task.
        case startConsumerTask
        /// Resume the consumer's parked task: there is work for it.
        case wakeConsumerTask
        /// Resume the consumer's parked task to end it.
        case retireConsumerTask
        /// Finish the sequence: no more events.
        case finishSequence
        /// Complete the consumer's delivery future and let go of the consumer.
        case completeDelivery
        /// The events were already taken another way: refuse the new sequence or consumer.
        case rejectReader
    }

    /// What the consumer's task does next (see ``consumerTaskNext()``).
    enum ConsumerTaskStep: Equatable {
        /// Call the consumer's `finish()` for the event it took without its task.
        case finishEarlierEvent
        /// Take the oldest held event (and finish it if `take` returns `false`).
        case takeHeldEvent
        /// Nothing to do: flush if `flush`, then park until woken or retired.
        case park(flush: Bool)
        /// The task ends (flush first if `flush`), then call ``consumerTaskEnded()``.
        case end(flush: Bool)
    }
}
