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
    /// The callback's task is running (it exists only while events are waiting or being handled).
    var draining = false
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

    init(handler: WebSocketChannelHandler, body: @escaping @Sendable (WebSocketEvent) async -> Void) {
        self.handler = handler
        self.body = body
    }

    func drain() async {
        await self.handler.drain(with: self.body)
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
            self.startDraining(pump)
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

    /// Starts the task that hands the waiting events to the callback, unless it runs already. It runs on the
    /// connection's event loop and ends when no event is left: an idle connection holds no task.
    private func startDraining(_ pump: EventPump) {
        guard !self.delivery.draining else { return }
        self.delivery.draining = true
        Task(executorPreference: EventLoopTaskExecutor.of(self.eventLoop)) { await pump.drain() }
    }

    /// The draining task's body (on the event loop: the task prefers the loop's executor, and the callback's
    /// awaits come back to it).
    func drain(with body: @Sendable (WebSocketEvent) async -> Void) async {
        while let event = self.delivery.inbox.popFirst() {
            self.eventLoop.preconditionInEventLoop()
            self.consumer.withLockedValue {
                $0.waiting = false
                $0.taken += 1
            }
            if self.inboundPaused, self.delivery.inbox.count <= self.delivery.lowWatermark {
                self.resumeInbound(consumerGone: false)
            }
            switch event {
            case .close, .error: self.barrierReached()
            default: break
            }
            await body(event)
        }
        self.eventLoop.preconditionInEventLoop()
        self.delivery.draining = false
        let taken = self.consumer.withLockedValue {
            $0.waiting = true
            return $0.taken
        }
        self.readerWillWait(taken: taken)
        self.completeIfDrained()
    }

    private func completeIfDrained() {
        guard self.ended, !self.delivery.draining, self.delivery.inbox.isEmpty, let finished = self.delivery.finished else { return }
        self.delivery.finished = nil
        self.delivery.sink = .done
        finished.succeed()
    }
}
