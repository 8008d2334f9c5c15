import NIOCore

/// The bookkeeping of a connection's event delivery, reads, flushes and close barrier, as a pure value: methods are
/// named after what happened and return the ``Action`` that ``WebSocketChannelHandler`` carries out. The protocol's
/// own rules stay in ``WebSocketStateMachine``; this machine decides *when* input is read, output is flushed, events
/// reach the application and a close may go out.
///
/// It holds counts and flags only (the events themselves, the sequence's source and the consumer's task live in the
/// handler), so it allocates nothing. It never reads the clock: the one timer it needs is returned as a delay for
/// the handler to schedule on the event loop's clock, and its expiry comes back as an event.
/// Loop-confined: the handler owns it and calls it on the event loop only. The one piece of delivery state touched
/// off the loop, the progress of an `AsyncSequence` reader (``ReaderProgress``), is passed in when needed.
struct DeliveryStateMachine {
    /// A deferred flush happens at once when this much is waiting, so that a task sending in a loop without
    /// suspending streams its data instead of filling the outbound queue.
    static let eagerFlushBytes = 32 * 1024
    /// The longest a close waits for the application to finish answering earlier messages.
    static let answerGrace = TimeAmount.seconds(1)

    /// Held events at which reading stops.
    let highWatermark: Int
    /// Held events at which reading resumes.
    let lowWatermark: Int
    /// How long a close waits at the barrier: ``answerGrace``, or the close timeout when shorter.
    let barrierGrace: TimeAmount

    private(set) var sink = Sink.undecided

    // Reading
    /// The application's buffer of events is full: no more reads until it drains.
    private var inboundPaused = false
    /// A read was asked for while paused or unwritable.
    private var readPending = false
    /// The channel's writability, as last reported.
    private var isWritable = true

    // Flushing
    private var inReadLoop = false
    private var needsFlush = false
    private var flushScheduled = false
    /// Bytes written since the last flush.
    private var unflushedBytes = 0

    // Events and the close barrier
    /// Events handed to the application (or held for it) so far.
    private(set) var delivered = 0
    /// Events held by the handler, waiting for the application or the consumer's task.
    private(set) var held = 0
    /// The application stopped consuming events; they are dropped from now on.
    private(set) var consumerGone = false
    /// The connection ended (its close event is delivered or held).
    private(set) var ended = false
    /// The close event was already delivered (when the peer's close frame arrived).
    private var closeEventDelivered = false
    /// A close waits for the application to take the events delivered before it (the barrier timer runs).
    private(set) var closePending = false

    // The consumer (loop-confined: its `take` runs on the loop, its task prefers the loop's executor)
    /// The consumer's task exists (running, or parked waiting for the next event).
    private(set) var draining = false
    /// The consumer's task is parked until the next event.
    private var parked = false
    /// The parked task was resumed to end: it ends unless work arrived meanwhile.
    private var retiring = false
    /// The consumer took an event at once but needs its task to finish it.
    private var unfinished = false
    /// The consumer took the close event: nothing follows it.
    private var closeTaken = false
    /// The consumer's `take` is running (an event delivered meanwhile, say from a failed write's close, waits).
    private var taking = false
    /// How far the consumer got (an `AsyncSequence` reader reports its own ``ReaderProgress``).
    private(set) var consumerProgress = ReaderProgress()

    init(bufferedEvents: Int, closeTimeout: TimeAmount) {
        self.highWatermark = bufferedEvents
        self.lowWatermark = max(1, bufferedEvents / 4)
        self.barrierGrace = min(closeTimeout, Self.answerGrace)
    }

    /// The consumer can take an event now: nothing waits before it, its `take` is not running, and its task (if
    /// any) is parked.
    private var consumerIsBetweenEvents: Bool {
        self.held == 0 && !self.taking && (!self.draining || self.parked)
    }

    // MARK: Reading

    /// The handler was added to a channel whose writability is `isWritable`.
    mutating func handlerAdded(isWritable: Bool) {
        self.isWritable = isWritable
    }

    /// The channel asks whether to read.
    mutating func readRequested() -> Action {
        if self.inboundPaused || !self.isWritable {
            // Do not take more input while the application or the peer cannot keep up with what we have.
            self.readPending = true
            return .none
        }
        return .read
    }

    /// The channel's writability changed.
    mutating func writabilityChanged(isWritable: Bool) -> Action {
        self.isWritable = isWritable
        return isWritable ? .drainWaitingWrites : .none
    }

    /// The sends that waited for room are written (as many as fit).
    mutating func waitingWritesDrained() -> Action {
        self.flush(thenRead: self.resumeReadingIfPossible())
    }

    /// The sequence's reader drained its buffer (`produceMore`).
    mutating func sequenceDrained() -> Action {
        self.inboundPaused = false
        return self.resumeReadingIfPossible() ? .read : .none
    }

    /// The application stopped consuming events (the sequence terminated): a pending close goes out, and reading
    /// resumes (dropping what comes).
    mutating func readerGone() -> Action {
        self.consumerGone = true
        let finish = self.barrierReached() == .finishClose(thenRead: false)
        self.inboundPaused = false
        let read = self.resumeReadingIfPossible()
        return finish ? .finishClose(thenRead: read) : (read ? .read : .none)
    }

    private mutating func resumeReadingIfPossible() -> Bool {
        guard self.readPending, !self.inboundPaused, self.isWritable else { return false }
        self.readPending = false
        return true
    }

    // MARK: Flushing

    /// Input processing starts (a batch of decoded frames is carried out).
    mutating func readLoopStarted() {
        self.inReadLoop = true
    }

    /// Input processing ends.
    mutating func readLoopEnded() {
        self.inReadLoop = false
    }

    /// `bytes` were written to the channel (not yet flushed).
    mutating func wrote(bytes: Int) {
        self.unflushedBytes += bytes
        self.needsFlush = true
    }

    /// The read completed: all the answers to the batch leave in one write.
    mutating func readComplete() -> Action {
        self.flush(thenRead: false)
    }

    /// What was written must leave now (a close frame, a keepalive ping, input after activation).
    mutating func flushDue() -> Action {
        self.flush(thenRead: false)
    }

    /// The application wrote a message. Inside a read loop the flush waits for read-complete; outside, it is
    /// deferred to the end of the event loop's current batch of tasks (so that a task answering several buffered
    /// events writes them in one syscall), unless much is waiting or the channel is not writable.
    mutating func messageWritten() -> Action {
        guard !self.inReadLoop else { return .none }
        if self.unflushedBytes >= Self.eagerFlushBytes || !self.isWritable {
            return self.flush(thenRead: false)
        }
        guard !self.flushScheduled else { return .none }
        self.flushScheduled = true
        return .scheduleFlush
    }

    /// The flush scheduled by ``messageWritten()`` is due.
    mutating func scheduledFlushRan() -> Action {
        self.flushScheduled = false
        return self.flush(thenRead: false)
    }

    /// A broadcast wrote one message: nothing to coalesce, so flush now unless a read loop will.
    mutating func broadcastWritten() -> Action {
        self.inReadLoop ? .none : self.flush(thenRead: false)
    }

    /// An `AsyncSequence` reader that took `taken` events is about to wait for the next one (on the event loop):
    /// when nothing is buffered for it, what it wrote goes out now instead of at the end of the event loop's tick,
    /// which takes a hop off every request/response round trip.
    mutating func readerWillWait(taken: Int) -> Action {
        self.readerWaits(taken: taken) ? .flush(thenRead: false) : .none
    }

    /// The close frame went out with a flush of its own.
    mutating func closeFrameFlushed() {
        self.needsFlush = false
        self.unflushedBytes = 0
    }

    private mutating func readerWaits(taken: Int) -> Bool {
        taken == self.delivered && !self.inReadLoop && self.takeFlush()
    }

    private mutating func flush(thenRead: Bool) -> Action {
        if self.takeFlush() { return .flush(thenRead: thenRead) }
        return thenRead ? .read : .none
    }

    private mutating func takeFlush() -> Bool {
        guard self.needsFlush else { return false }
        self.needsFlush = false
        self.unflushedBytes = 0
        return true
    }

    // MARK: Events

    /// An event is ready for the application.
    mutating func eventReady(_ event: WebSocketEvent) -> Action {
        guard !self.consumerGone else { return .none }
        self.delivered += 1
        switch self.sink {
        case .sequence:
            return .yield(event)
        case .undecided:
            return self.hold(event)
        case .consumer:
            // A busy consumer (in its task, or still in `take`) gets the event after the earlier ones.
            return self.consumerIsBetweenEvents ? .take(event) : self.hold(event)
        case .done:
            return .none
        }
    }

    private mutating func hold(_ event: WebSocketEvent) -> Action {
        self.held += 1
        if self.held >= self.highWatermark { self.inboundPaused = true }
        return .hold(event)
    }

    /// The sequence's buffer reached its high watermark.
    mutating func sequenceFull() {
        self.inboundPaused = true
    }

    /// The sequence dropped an event: its reader is gone.
    mutating func sequenceDropped() {
        self.consumerGone = true
    }

    /// The peer's close frame was delivered. When an answer is owed, it waits for the barrier (see
    /// ``closeAfterBarrier(reader:)``); when this end started the close, the application has nothing left to
    /// answer.
    mutating func closeReceived(answerOwed: Bool, reader: ReaderProgress) -> Action {
        self.closeEventDelivered = true
        guard answerOwed else { return .finishClose(thenRead: false) }
        return self.closeAfterBarrier(reader: reader)
    }

    /// The connection failed (protocol violation, pong timeout): the error event was delivered and the close
    /// waits for the barrier.
    mutating func failureDelivered(reader: ReaderProgress) -> Action {
        self.closeAfterBarrier(reader: reader)
    }

    /// Closes once the application has taken every event delivered before the close or failure, so that its
    /// answers to earlier messages leave before the close frame; ``barrierGrace`` bounds the wait.
    private mutating func closeAfterBarrier(reader: ReaderProgress) -> Action {
        let progress = self.sink == .consumer || self.sink == .done ? self.consumerProgress : reader
        // The reader is idle when it took the close or error already (a consumer takes events as they are read),
        // or waits for an event having taken all before it. A reader that has not started yet may still answer
        // what came before (it gets the grace period).
        let idle = progress.taken == self.delivered || (progress.waiting && progress.taken == self.delivered - 1)
        guard !self.consumerGone, !idle, !self.ended else {
            return .finishClose(thenRead: false)
        }
        self.closePending = true
        return .startBarrierTimer(in: self.barrierGrace)
    }

    /// The application took the close or error event, stopped listening, or is closing: a close waiting at the
    /// barrier goes out now.
    mutating func barrierReached() -> Action {
        guard self.closePending else { return .none }
        self.closePending = false
        return .finishClose(thenRead: false)
    }

    /// The application took too long to reach the barrier.
    mutating func barrierTimerFired() -> Action {
        self.barrierReached()
    }

    /// The connection ended. Returns whether this is news, and whether the close event must still be delivered
    /// (then call ``eventReady(_:)`` with it before ``deliveryEnding()``).
    mutating func connectionEnded() -> (first: Bool, deliverClose: Bool) {
        guard !self.ended else { return (false, false) }
        self.ended = true
        return (true, !self.closeEventDelivered)
    }

    /// No more events will come: the sequence finishes, the consumer completes once it is done with the last one.
    mutating func deliveryEnding() -> Action {
        switch self.sink {
        case .sequence: return .finishSequence
        case .consumer: return self.completeIfDrained()
        case .undecided, .done: return .none
        }
    }

    // MARK: Choosing a reader

    /// The application iterates ``WebSocket/events``; the held events go to the sequence first (call
    /// ``nextHeldEventForSequence()`` for each, then ``heldEventsMoved()``).
    mutating func sequenceAttached() -> Action {
        guard self.sink == .undecided else { return .rejectReader }
        self.sink = .sequence
        self.inboundPaused = false
        return .none
    }

    /// Whether the oldest held event goes to the new sequence now.
    mutating func nextHeldEventForSequence() -> Bool {
        guard !self.consumerGone, self.held > 0 else { return false }
        self.held -= 1
        return true
    }

    /// The held events went to the sequence (those left, if the reader is gone, are dropped).
    mutating func heldEventsMoved() -> Action {
        self.held = 0
        if self.ended { return .finishSequence }
        let finish = self.consumerGone && self.barrierReached() != .none
        let read = self.resumeReadingIfPossible()
        return finish ? .finishClose(thenRead: read) : (read ? .read : .none)
    }

    /// The application takes events through a consumer.
    mutating func consumerAttached() -> Action {
        guard self.sink == .undecided else { return .rejectReader }
        self.sink = .consumer
        guard self.held == 0 else { return self.startConsumerTask() }
        // Nothing to answer: the reader is idle, so a close needs not wait for it.
        self.consumerProgress.waiting = true
        return self.completeIfDrained()
    }

    // MARK: The consumer

    /// The consumer is about to take an event of `kind`, on the event loop (inline or in its task).
    mutating func consumerWillTake(_ kind: EventKind) -> Action {
        var read = false
        if self.inboundPaused, self.held <= self.lowWatermark {
            self.inboundPaused = false
            read = self.resumeReadingIfPossible()
        }
        if kind == .close { self.closeTaken = true }
        let finish = kind != .message && self.barrierReached() != .none
        self.taking = true
        return finish ? .finishClose(thenRead: read) : (read ? .read : .none)
    }

    /// The consumer's `take` returned `done` (`false`: its task must call `finish()` before the next event).
    /// Taken without a task (`inTask` false), what follows is decided here: the task is started or woken to
    /// finish the event or take the ones delivered during `take`, or retired after the close.
    mutating func consumerTook(done: Bool, inTask: Bool) -> Action {
        self.taking = false
        self.consumerProgress.waiting = done
        self.consumerProgress.taken += 1
        guard !inTask else { return .none }
        if !done {
            self.unfinished = true
            return self.wakeOrStartConsumerTask()
        }
        if self.held > 0 { return self.wakeOrStartConsumerTask() }
        if self.closeTaken { return self.retireConsumerTask() }
        return .none
    }

    /// What the consumer's task does next.
    mutating func consumerTaskNext() -> ConsumerTaskStep {
        if self.retiring {
            self.retiring = false
            if self.held == 0 && !self.unfinished { return .end(flush: false) }
        }
        if self.unfinished {
            self.unfinished = false
            return .finishEarlierEvent
        }
        if self.held > 0 {
            self.held -= 1
            return .takeHeldEvent
        }
        self.consumerProgress.waiting = true
        let flush = self.readerWaits(taken: self.consumerProgress.taken)
        // Nothing follows the close event.
        return self.closeTaken ? .end(flush: flush) : .park(flush: flush)
    }

    /// The consumer's task parked.
    mutating func consumerParked() {
        self.parked = true
    }

    /// The consumer's parked task resumed: `more` when woken for work, `false` when retired.
    mutating func consumerWoken(more: Bool) {
        self.retiring = !more
    }

    /// The consumer's task ended.
    mutating func consumerTaskEnded() -> Action {
        self.draining = false
        return self.completeIfDrained()
    }

    /// The loop's sweeper found the consumer's task idle for a whole period: it ends if parked (the next event
    /// that needs a task starts a new one).
    mutating func sweeperFoundIdle() -> Action {
        self.retireConsumerTask()
    }

    private mutating func wakeOrStartConsumerTask() -> Action {
        if self.parked {
            self.parked = false
            return .wakeConsumerTask
        }
        return self.startConsumerTask()
    }

    private mutating func startConsumerTask() -> Action {
        guard !self.draining else { return .none }
        self.draining = true
        return .startConsumerTask
    }

    private mutating func retireConsumerTask() -> Action {
        guard self.parked else { return .none }
        self.parked = false
        return .retireConsumerTask
    }

    private mutating func completeIfDrained() -> Action {
        guard self.ended, !self.draining, self.held == 0, self.sink == .consumer else { return .none }
        self.sink = .done
        return .completeDelivery
    }
}
