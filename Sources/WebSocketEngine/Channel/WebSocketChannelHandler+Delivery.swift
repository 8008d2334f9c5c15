import DequeModule
import NIOCore

/// Where a connection's events go. Until the application chooses how to take them they wait in ``inbox``; then
/// they go to an `AsyncSequence` (``WebSocket/events``) or to a callback (``WebSocket/deliverEvents(to:)``).
/// Either way, at most ``highWatermark`` events wait before the connection stops reading.
struct EventDelivery {
    enum Sink {
        case undecided
        case sequence(WebSocketChannelHandler.Producer.Source)
        case callback(EventPump)
        /// The callback took the last event (the pump, which holds the handler, is let go).
        case done
    }

    var sink = Sink.undecided
    /// Events waiting for the callback, or for the application to choose.
    var inbox: Deque<WebSocketEvent> = []
    /// The callback's task exists (running, or parked waiting for the next event).
    var draining = false
    /// The callback's task, parked until the next event (`true`) or until the sweeper retires it (`false`).
    var waiter: UnsafeContinuation<Bool, Never>?
    /// Completed once the callback has returned for the last event.
    var finished: EventLoopPromise<Void>?
    let lowWatermark: Int
    let highWatermark: Int

    init(bufferedEvents: Int) {
        self.highWatermark = bufferedEvents
        self.lowWatermark = max(1, bufferedEvents / 4)
    }
}

/// The callback of ``WebSocket/deliverEvents(to:)`` with its connection's handler: the one object a draining task
/// captures, so starting the task allocates no closure context.
final class EventPump: @unchecked Sendable {
    // Touched only on the connection's event loop (the draining task prefers its executor).
    let handler: WebSocketChannelHandler
    let body: @Sendable (WebSocketEvent) async -> Void
    let sweeper: IdleTaskSweeper
    /// Where the sweeper lists this pump's task (-1 when it has none).
    var slot = -1
    /// The sweeper's generation when the task last took an event.
    var lastActive = 0

    init(handler: WebSocketChannelHandler, body: @escaping @Sendable (WebSocketEvent) async -> Void) {
        self.handler = handler
        self.body = body
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
        case .callback(let pump):
            self.hold(event)
            if let waiter = self.delivery.waiter {
                self.delivery.waiter = nil
                waiter.resume(returning: true)
            } else {
                self.startDraining(pump)
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

    /// No more events will come: the sequence finishes, the callback completes once it has taken the last one.
    func finishDelivery() {
        switch self.delivery.sink {
        case .undecided:
            break
        case .sequence(let source):
            source.finish()
        case .callback:
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

    /// The application takes events through a callback (``WebSocket/deliverEvents(to:)``).
    func startCallback(_ body: @escaping @Sendable (WebSocketEvent) async -> Void, finished: EventLoopPromise<Void>) {
        guard case .undecided = self.delivery.sink else {
            // ``WebSocket/events`` was used first.
            return finished.fail(WebSocketError.concurrentReceive)
        }
        let pump = EventPump(handler: self, body: body)
        self.delivery.sink = .callback(pump)
        self.delivery.finished = finished
        if self.delivery.inbox.isEmpty {
            // Nothing to answer: the reader is idle, so a close needs not wait for it.
            self.consumer.withLockedValue { $0.waiting = true }
            self.completeIfDrained()
        } else {
            self.startDraining(pump)
        }
    }

    /// Starts the task that hands the waiting events to the callback, unless it exists already. It runs on the
    /// connection's event loop, parks between events, and ends after the close event or when the loop's
    /// ``IdleTaskSweeper`` finds it idle for a whole period: an idle connection holds no task.
    private func startDraining(_ pump: EventPump) {
        guard !self.delivery.draining else { return }
        self.delivery.draining = true
        Task(executorPreference: EventLoopTaskExecutor.of(self.eventLoop)) { await pump.drain() }
    }

    /// The draining task's body (on the event loop: the task prefers the loop's executor, and the callback's
    /// awaits come back to it).
    func drain(_ pump: EventPump) async {
        pump.sweeper.add(pump)
        var closed = false
        while true {
            while let event = self.delivery.inbox.popFirst() {
                self.eventLoop.preconditionInEventLoop()
                pump.lastActive = pump.sweeper.generation
                self.consumer.withLockedValue {
                    $0.waiting = false
                    $0.taken += 1
                }
                if self.inboundPaused, self.delivery.inbox.count <= self.delivery.lowWatermark {
                    self.resumeInbound(consumerGone: false)
                }
                switch event {
                case .close: closed = true; self.barrierReached()
                case .error: self.barrierReached()
                default: break
                }
                await pump.body(event)
            }
            self.eventLoop.preconditionInEventLoop()
            let taken = self.consumer.withLockedValue {
                $0.waiting = true
                return $0.taken
            }
            self.readerWillWait(taken: taken)
            // Nothing follows the close event.
            if closed { break }
            let more = await withUnsafeContinuation { self.delivery.waiter = $0 }
            if !more && self.delivery.inbox.isEmpty { break }
        }
        self.delivery.draining = false
        pump.sweeper.remove(pump)
        self.completeIfDrained()
    }

    /// The sweeper found the callback's task idle for a whole period: it ends (the next event starts a new one).
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
