import DequeModule
import NIOCore

/// The consumer of ``WebSocket/deliverEvents(consumer:)`` with its connection's handler: the one object a draining
/// task captures, so starting the task allocates no closure context.
///
/// `@unchecked Sendable` because a task's closure must be `@Sendable` and capturing one class reference is what
/// keeps the task start free of a context allocation (an `NIOLoopBound` would need one). Every member is touched
/// on the connection's event loop only: the draining task prefers the loop's executor, and the sweeper runs there.
final class EventPump: @unchecked Sendable {
    let handler: WebSocketChannelHandler
    let consumer: any WebSocketEventConsumer
    let sweeper: IdleTaskSweeper
    /// Where the sweeper lists this pump's task (-1 when it has none).
    var slot = -1
    /// The sweeper's generation when the task last took an event.
    var lastActive = 0

    init(handler: WebSocketChannelHandler, consumer: any WebSocketEventConsumer) {
        self.handler = handler
        self.consumer = consumer
        self.sweeper = IdleTaskSweeper.of(handler.eventLoop)
    }

    func drain() async {
        await self.handler.drain(self)
    }
}

/// Where a connection's events go. Until the application chooses how to take them they wait in
/// ``WebSocketChannelHandler/inbox``; then they go to an `AsyncSequence` (``WebSocket/events``) or to a consumer
/// (``WebSocket/deliverEvents(consumer:)``). ``DeliveryStateMachine`` decides; these carry out.
extension WebSocketChannelHandler {
    /// Hands one event to the application (or holds it until the application takes it).
    func deliver(_ event: WebSocketEvent) {
        self.run(self.delivery.eventReady(event))
    }

    func yield(_ event: WebSocketEvent) {
        guard let source = self.source else { return }
        switch source.yield(event) {
        case .produceMore:
            break
        case .stopProducing:
            self.delivery.sequenceFull()
        case .dropped:
            self.delivery.sequenceDropped()
        }
    }

    /// The sequence's reader drained its buffer.
    func sequenceDrained() {
        self.run(self.delivery.sequenceDrained())
    }

    /// The sequence's reader is gone.
    func readerGone() {
        self.run(self.delivery.readerGone())
    }

    /// The application iterates ``WebSocket/events``: the held events go to the sequence first.
    func attach(_ source: Producer.Source) {
        guard self.delivery.sequenceAttached() != .rejectReader else { return source.finish() }
        self.source = source
        while self.delivery.nextHeldEventForSequence(), let event = self.inbox.popFirst() {
            self.yield(event)
        }
        self.inbox = []
        self.run(self.delivery.heldEventsMoved())
    }

    /// The application takes events through a consumer (``WebSocket/deliverEvents(consumer:)``).
    func startConsumer(_ consumer: any WebSocketEventConsumer, finished: EventLoopPromise<Void>) {
        // ``WebSocket/events`` was used first?
        guard self.sink == .undecided else { return finished.fail(WebSocketError.concurrentReceive) }
        self.pump = EventPump(handler: self, consumer: consumer)
        self.finished = finished
        self.run(self.delivery.consumerAttached())
    }

    private var sink: DeliveryStateMachine.Sink { self.delivery.sink }

    /// The consumer takes `event` at once, on the event loop, without its task.
    func takeAtOnce(_ event: WebSocketEvent) {
        guard let pump = self.pump else { return }
        let done = self.take(event, pump)
        self.run(self.delivery.consumerTook(done: done, inTask: false))
    }

    /// Hands `event` to the consumer (on the event loop), with the delivery's bookkeeping.
    ///
    /// - Returns: whether the consumer is done with it (otherwise its task must call ``WebSocketEventConsumer/finish()``).
    private func take(_ event: WebSocketEvent, _ pump: EventPump) -> Bool {
        pump.lastActive = pump.sweeper.generation
        self.run(self.delivery.consumerWillTake(.init(event)))
        return pump.consumer.take(event)
    }

    /// Starts the task that finishes what the consumer could not do at once and hands it the events that came
    /// meanwhile. It runs on the connection's event loop, parks between events, and ends after the close event or
    /// when the loop's ``IdleTaskSweeper`` finds it idle for a whole period: an idle connection holds no task.
    ///
    /// Who owns it: the connection. It is not a child of the server's task (it starts on the event loop, where no
    /// task is running), but it never outlives the connection's delivery: it ends after the close event, the
    /// consumer's delivery future (``WebSocket/deliveryFinished``) completes only after it ended, and the server
    /// counts a connection served until that future completes (see ``ServedConnections``).
    func startConsumerTask() {
        guard let pump = self.pump else { return }
        Task(executorPreference: EventLoopTaskExecutor.of(self.eventLoop)) { await pump.drain() }
    }

    /// Resumes the consumer's parked task: for work (`more`), or to end.
    func resumeConsumerTask(more: Bool) {
        guard let waiter = self.waiter else { return }
        self.waiter = nil
        waiter.resume(returning: more)
    }

    /// The draining task's body (on the event loop: the task prefers the loop's executor, and the consumer's
    /// awaits come back to it).
    func drain(_ pump: EventPump) async {
        pump.sweeper.add(pump)
        loop: while true {
            self.eventLoop.preconditionInEventLoop()
            switch self.delivery.consumerTaskNext() {
            case .finishEarlierEvent:
                await pump.consumer.finish()
            case .takeHeldEvent:
                let event = self.inbox.removeFirst()
                let done = self.take(event, pump)
                self.run(self.delivery.consumerTook(done: done, inTask: true))
                if !done { await pump.consumer.finish() }
            case .park(let flush):
                if flush { self.run(.flush(thenRead: false)) }
                let more = await withUnsafeContinuation {
                    self.waiter = $0
                    self.delivery.consumerParked()
                }
                self.delivery.consumerWoken(more: more)
            case .end(let flush):
                if flush { self.run(.flush(thenRead: false)) }
                break loop
            }
        }
        pump.sweeper.remove(pump)
        self.run(self.delivery.consumerTaskEnded())
    }

    /// Ends the consumer's parked task: the sweeper found it idle for a whole period.
    func retireIfParked() {
        self.run(self.delivery.sweeperFoundIdle())
    }
}
