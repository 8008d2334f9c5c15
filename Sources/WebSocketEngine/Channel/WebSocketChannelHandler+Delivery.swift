import DequeModule
import NIOCore

/// Where a connection's events go. Until the application chooses how to take them they wait in ``inbox``; then
/// they go to an `AsyncSequence` (``WebSocket/events``) or to a consumer (``WebSocket/deliverEvents(consumer:)``, or a
/// callback with ``WebSocket/deliverEvents(to:)``).
/// Either way, at most ``highWatermark`` events wait before the connection stops reading.
struct EventDelivery {
    enum Sink {
        case undecided
        case sequence(WebSocketChannelHandler.Producer.Source)
        case consumer(EventPump)
        /// The consumer took the last event (the pump, which holds the handler, is let go).
        case done
    }

    var sink = Sink.undecided
    /// Events waiting for the consumer, or for the application to choose.
    var inbox: Deque<WebSocketEvent> = []
    /// The consumer's task exists (running, or parked waiting for the next event).
    var draining = false
    /// The consumer's task, parked until the next event (`true`) or until the sweeper retires it (`false`).
    var waiter: UnsafeContinuation<Bool, Never>?
    /// The consumer took an event at once but needs its task to finish it.
    var unfinished = false
    /// The consumer took the close event: nothing follows it.
    var closeTaken = false
    /// The consumer's `take` is running (an event delivered meanwhile, say from a failed write's close, waits).
    var taking = false
    /// Completed once the consumer is done with the last event.
    var finished: EventLoopPromise<Void>?
    let lowWatermark: Int
    let highWatermark: Int

    /// The consumer can take an event now: nothing waits before it, its `take` is not running, and its task (if
    /// any) is parked.
    var isBetweenEvents: Bool {
        self.inbox.isEmpty && !self.taking && (!self.draining || self.waiter != nil)
    }

    init(bufferedEvents: Int) {
        self.highWatermark = bufferedEvents
        self.lowWatermark = max(1, bufferedEvents / 4)
    }
}

/// The consumer of ``WebSocket/deliverEvents(consumer:)`` with its connection's handler: the one object a draining
/// task captures, so starting the task allocates no closure context.
final class EventPump: @unchecked Sendable {
    // Touched only on the connection's event loop (the draining task prefers its executor).
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

extension WebSocketChannelHandler {
    /// Hands one event to the application (or holds it until the application takes it).
    func deliver(_ event: WebSocketEvent) {
        guard !self.consumerGone else { return }
        self.delivered += 1
        switch self.delivery.sink {
        case .sequence(let source):
            self.yield(event, to: source)
        case .undecided:
            self.hold(event)
        case .consumer(let pump):
            guard self.delivery.isBetweenEvents else {
                // The consumer is busy with an earlier event (in its task, or still in `take`): this one waits.
                return self.hold(event)
            }
            // The consumer is between events: it takes this one now, without a task.
            if !self.take(event, pump) {
                self.delivery.unfinished = true
                self.wakeOrStartDraining(pump)
            } else if !self.delivery.inbox.isEmpty {
                // Events delivered while `take` ran go to the task.
                self.wakeOrStartDraining(pump)
            } else if self.delivery.closeTaken {
                self.retireIfParked()
            }
        case .done:
            break
        }
    }

    private func hold(_ event: WebSocketEvent) {
        self.delivery.inbox.append(event)
        if self.delivery.inbox.count >= self.delivery.highWatermark { self.inboundPaused = true }
    }

    private func yield(_ event: WebSocketEvent, to source: Producer.Source) {
        switch source.yield(event) {
        case .produceMore:
            break
        case .stopProducing:
            self.inboundPaused = true
        case .dropped:
            self.consumerGone = true
        }
    }

    /// No more events will come: the sequence finishes, the consumer completes once it is done with the last one.
    func finishDelivery() {
        switch self.delivery.sink {
        case .undecided:
            break
        case .sequence(let source):
            source.finish()
        case .consumer:
            self.completeIfDrained()
        case .done:
            break
        }
    }

    /// The application iterates ``WebSocket/events``: the held events go to the sequence first.
    func attach(_ source: Producer.Source) {
        guard case .undecided = self.delivery.sink else { return source.finish() }
        self.delivery.sink = .sequence(source)
        self.inboundPaused = false
        while !self.consumerGone, let event = self.delivery.inbox.popFirst() {
            self.yield(event, to: source)
        }
        self.delivery.inbox = []
        if self.ended { source.finish() }
        if self.consumerGone { self.barrierReached() }
        self.resumeReadingIfPossible()
    }

    /// The application takes events through a consumer (``WebSocket/deliverEvents(consumer:)``).
    func startConsumer(_ consumer: any WebSocketEventConsumer, finished: EventLoopPromise<Void>) {
        guard case .undecided = self.delivery.sink else {
            // ``WebSocket/events`` was used first.
            return finished.fail(WebSocketError.concurrentReceive)
        }
        let pump = EventPump(handler: self, consumer: consumer)
        self.delivery.sink = .consumer(pump)
        self.delivery.finished = finished
        if self.delivery.inbox.isEmpty {
            // Nothing to answer: the reader is idle, so a close needs not wait for it.
            self.consumer.withLockedValue { $0.waiting = true }
            self.completeIfDrained()
        } else {
            self.startDraining(pump)
        }
    }

    /// Hands `event` to the consumer (on the event loop), with the delivery's bookkeeping.
    ///
    /// - Returns: whether the consumer is done with it (otherwise its task must call ``WebSocketEventConsumer/finish()``).
    private func take(_ event: WebSocketEvent, _ pump: EventPump) -> Bool {
        pump.lastActive = pump.sweeper.generation
        if self.inboundPaused, self.delivery.inbox.count <= self.delivery.lowWatermark {
            self.resumeInbound(consumerGone: false)
        }
        switch event {
        case .close: self.delivery.closeTaken = true; self.barrierReached()
        case .error: self.barrierReached()
        default: break
        }
        self.delivery.taking = true
        let done = pump.consumer.take(event)
        self.delivery.taking = false
        self.consumer.withLockedValue {
            $0.waiting = done
            $0.taken += 1
        }
        return done
    }

    /// Wakes the consumer's parked task, or starts one.
    private func wakeOrStartDraining(_ pump: EventPump) {
        if let waiter = self.delivery.waiter {
            self.delivery.waiter = nil
            waiter.resume(returning: true)
        } else {
            self.startDraining(pump)
        }
    }

    /// Starts the task that finishes what the consumer could not do at once and hands it the events that came
    /// meanwhile, unless it exists already. It runs on the connection's event loop, parks between events, and ends
    /// after the close event or when the loop's ``IdleTaskSweeper`` finds it idle for a whole period: an idle
    /// connection holds no task.
    private func startDraining(_ pump: EventPump) {
        guard !self.delivery.draining else { return }
        self.delivery.draining = true
        Task(executorPreference: EventLoopTaskExecutor.of(self.eventLoop)) { await pump.drain() }
    }

    /// The draining task's body (on the event loop: the task prefers the loop's executor, and the consumer's
    /// awaits come back to it).
    func drain(_ pump: EventPump) async {
        pump.sweeper.add(pump)
        while true {
            if self.delivery.unfinished {
                self.delivery.unfinished = false
                await pump.consumer.finish()
            }
            while let event = self.delivery.inbox.popFirst() {
                self.eventLoop.preconditionInEventLoop()
                if !self.take(event, pump) { await pump.consumer.finish() }
            }
            self.eventLoop.preconditionInEventLoop()
            let taken = self.consumer.withLockedValue {
                $0.waiting = true
                return $0.taken
            }
            self.readerWillWait(taken: taken)
            // Nothing follows the close event.
            if self.delivery.closeTaken { break }
            let more = await withUnsafeContinuation { self.delivery.waiter = $0 }
            if !more && self.delivery.inbox.isEmpty && !self.delivery.unfinished { break }
        }
        self.delivery.draining = false
        pump.sweeper.remove(pump)
        self.completeIfDrained()
    }

    /// Ends the consumer's parked task: the sweeper found it idle for a whole period (the next event that needs a
    /// task starts a new one), or the consumer took the close event without it.
    func retireIfParked() {
        guard let waiter = self.delivery.waiter else { return }
        self.delivery.waiter = nil
        waiter.resume(returning: false)
    }

    private func completeIfDrained() {
        guard self.ended, !self.delivery.draining, self.delivery.inbox.isEmpty, let finished = self.delivery.finished else { return }
        self.delivery.finished = nil
        self.delivery.sink = .done
        finished.succeed()
    }
}
