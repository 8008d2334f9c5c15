import DequeModule
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// Carries out what ``WebSocketStateMachine`` decides on a NIO channel: writes, flushes, timers, closing TCP,
/// delivering events with backpressure (see `WebSocketChannelHandler+Delivery.swift`). It holds no protocol rule
/// of its own. Event-loop bound, not `Sendable`.
final class WebSocketChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    typealias Producer = NIOAsyncSequenceProducer<
        WebSocketEvent, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, InboundDelegate
    >

    private var machine: WebSocketStateMachine
    let configuration: WebSocketConfiguration
    let eventLoop: any EventLoop
    /// Where events go: held until the application chooses a way to take them, then a sequence or a consumer.
    var delivery: EventDelivery
    /// The connection ended (its close event is delivered or waiting in ``delivery``).
    var ended = false
    private var context: ChannelHandlerContext?
    /// The application stopped consuming events; they are dropped from now on.
    var consumerGone = false
    /// The application's buffer of events is full: no more reads until it drains.
    var inboundPaused = false
    private var readPending = false
    private var inReadLoop = false
    private var needsFlush = false
    private var flushScheduled = false
    /// Bytes written since the last flush.
    private var unflushedBytes = 0
    /// A deferred flush happens at once when this much is waiting, so that a task sending in a loop without
    /// suspending streams its data instead of filling the outbound queue.
    private static let eagerFlushBytes = 32 * 1024
    /// Sends waiting for the outbound queue to drain (backpressure policy `.wait`), in order.
    private var waitingWrites: Deque<(ByteBuffer, EventLoopPromise<Void>?)> = []
    private var closeTimer: Scheduled<Void>?
    private var keepaliveTimer: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?
    private let closedPromise: EventLoopPromise<WebSocketCloseInfo>
    /// What the application's event consumer is doing (shared with the connection's event iterator).
    let consumer = NIOLockedValueBox(ConsumerState())
    /// Input waits here until the HTTP handlers are gone (see ``activate()``).
    private var isActivated = false
    /// The close event was already delivered (when the peer's close frame arrived).
    private var closeEventDelivered = false
    /// A close waiting for the application to take the events delivered before it.
    private var closePending = false
    /// Events handed to the application so far.
    var delivered = 0
    private var barrierTimer: Scheduled<Void>?

    init(
        machine: WebSocketStateMachine,
        configuration: WebSocketConfiguration,
        eventLoop: any EventLoop,
        closedPromise: EventLoopPromise<WebSocketCloseInfo>
    ) {
        self.machine = machine
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.delivery = EventDelivery(bufferedEvents: configuration.inboundBufferedEvents)
        self.closedPromise = closedPromise
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let interval = self.configuration.keepalive?.interval {
            self.scheduleKeepalive(at: .now() + interval)
        }
        if let timeout = self.configuration.idleTimeout {
            self.scheduleIdle(at: .now() + timeout)
        }
        if !context.channel.isActive {
            self.connectionEnded(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.connectionEnded(context: context)
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = NIODeadline.now()
        self.machine.receive(self.unwrapInboundIn(data), now: now)
        guard self.isActivated else { return }
        self.processInput(context: context, now: now)
    }

    /// Starts processing input once the handshake's handlers are out of the pipeline (bytes that followed the
    /// handshake were already buffered by ``channelRead(context:data:)``).
    func activate() {
        guard !self.isActivated, let context = self.context else { return }
        self.isActivated = true
        self.processInput(context: context, now: .now())
        self.flushIfNeeded()
    }

    /// Carries out the state machine's inbound actions for what was read (at `now`: one clock reading per read).
    private func processInput(context: ChannelHandlerContext, now: NIODeadline) {
        self.inReadLoop = true
        defer { self.inReadLoop = false }
        while true {
            switch self.machine.nextInboundAction(now: now) {
            case .needMoreData:
                return
            case .message(.text(let text)):
                self.deliver(.text(text))
            case .message(.binary(let buffer)):
                self.deliver(.binary(buffer))
            case .ping(let payload, let pong):
                if let pong { self.write(pong, promise: nil) }
                self.deliver(.ping(payload))
            case .pong(let payload):
                self.deliver(.pong(payload))
            case .closed(let info):
                self.deliver(.close(info))
                self.closeEventDelivered = true
                if self.machine.owesCloseFrame {
                    self.closeAfterBarrier()
                } else {
                    // This end started the close: the application has nothing left to answer.
                    self.finishClose()
                }
                return
            case .failed(let error):
                self.deliver(.error(error))
                self.closeAfterBarrier()
                return
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if self.inboundPaused || !context.channel.isWritable {
            // Do not take more input while the application or the peer cannot keep up with what we have.
            self.readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            while context.channel.isWritable, let (frame, promise) = self.waitingWrites.popFirst() {
                self.write(frame, promise: promise)
            }
            self.flushIfNeeded()
            self.resumeReadingIfPossible()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.connectionEnded(context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // I/O errors (reset by peer, TLS failures) end the connection; the close event reports 1006.
        context.close(promise: nil)
    }

    // MARK: Application requests (on the event loop)

    func send(_ message: WebSocketMessage, promise: EventLoopPromise<Void>?) {
        do {
            let frame = try self.machine.encode(message, now: .now())
            self.enqueue(frame, promise: promise)
        } catch {
            promise?.fail(error)
        }
    }

    /// Sends at once or throws: a full outbound queue is an error here whatever the backpressure policy (for
    /// broadcasts, which must not wait on one slow connection).
    func sendNow(_ prepared: WebSocketPreparedMessage) throws(WebSocketError) {
        let frame = try self.machine.encode(prepared, now: .now())
        guard let context = self.context else { throw .connectionClosed }
        guard self.hasRoom(context) else {
            throw .outboundQueueFull(limit: self.configuration.outboundQueueSize)
        }
        self.write(frame, promise: nil)
        // One message per connection: nothing to coalesce, so flush now rather than schedule a task per connection.
        if !self.inReadLoop { self.flushIfNeeded() }
    }

    /// Sends at once when the outbound queue has room (`nil`), or queues the frame and returns the future of its
    /// write (backpressure `wait`); throws when the connection is closed or the queue is full under `fail`. No
    /// promise is made on the common path.
    func sendFromLoop(_ message: WebSocketMessage) throws -> EventLoopFuture<Void>? {
        switch try self.machine.encodeParts(message, now: .now()) {
        case .whole(let frame): return try self.enqueueFromLoop(frame)
        case .split(let header, let payload): return try self.enqueueFromLoop(header, then: payload)
        }
    }

    /// Sends at once and returns `true` when the outbound queue has room; otherwise returns `false` having done
    /// nothing (not even encoded, so a compressor's state is untouched).
    func trySendFromLoop(_ message: WebSocketMessage) throws -> Bool {
        guard let context = self.context else { throw WebSocketError.connectionClosed }
        guard self.hasRoom(context) else { return false }
        _ = try self.sendFromLoop(message)
        return true
    }

    /// Whether a data frame can be written now: the channel is writable and no send waits for room before it.
    private func hasRoom(_ context: ChannelHandlerContext) -> Bool {
        context.channel.isWritable && self.waitingWrites.isEmpty
    }

    /// ``sendFromLoop(_:)`` for a prepared message.
    func sendFromLoop(_ prepared: WebSocketPreparedMessage) throws -> EventLoopFuture<Void>? {
        try self.enqueueFromLoop(try self.machine.encode(prepared, now: .now()))
    }

    /// Writes `frame` (and `rest`, its payload when the header was made apart) at once when the outbound queue
    /// has room.
    private func enqueueFromLoop(_ frame: ByteBuffer, then rest: ByteBuffer? = nil) throws(WebSocketError) -> EventLoopFuture<Void>? {
        guard let context = self.context else { throw .connectionClosed }
        if self.hasRoom(context) {
            self.write(frame, promise: nil)
            if let rest { self.write(rest, promise: nil) }
            self.scheduleFlush()
            return nil
        }
        switch self.configuration.outboundBackpressure {
        case .fail:
            throw .outboundQueueFull(limit: self.configuration.outboundQueueSize)
        case .wait:
            let promise = context.eventLoop.makePromise(of: Void.self)
            // A waiting frame is one buffer, so that nothing written meanwhile (a pong) can land inside it.
            var whole = frame
            if let rest { whole.writeImmutableBuffer(rest) }
            self.waitingWrites.append((whole, promise))
            return promise.futureResult
        }
    }

    func send(_ prepared: WebSocketPreparedMessage, promise: EventLoopPromise<Void>?) {
        do {
            let frame = try self.machine.encode(prepared, now: .now())
            self.enqueue(frame, promise: promise)
        } catch {
            promise?.fail(error)
        }
    }

    func sendFragment(_ payload: ByteBuffer, isText: Bool, fin: Bool, promise: EventLoopPromise<Void>?) {
        do {
            let frame = try self.machine.encodeFragment(payload, isText: isText, fin: fin, now: .now())
            self.enqueue(frame, promise: promise)
        } catch {
            promise?.fail(error)
        }
    }

    func sendControl(_ opcode: WebSocketOpcode, payload: ByteBuffer, promise: EventLoopPromise<Void>?) {
        do {
            let frame = try self.machine.encodeControl(opcode, payload: payload)
            // Control frames bypass the data queue: they are small and must not wait behind large messages.
            self.write(frame, promise: promise)
            self.scheduleFlush()
        } catch {
            promise?.fail(error)
        }
    }

    func close(code: WebSocketCloseCode, reason: String, promise: EventLoopPromise<Void>?) {
        // Closing says the application is done with the events before a pending close: send it now.
        self.barrierReached()
        do {
            switch try self.machine.close(code: code, reason: reason, now: .now()) {
            case .send(let frame, let deadline):
                self.write(frame, promise: nil)
                self.flushIfNeeded()
                self.scheduleClose(at: deadline)
            case .none:
                break
            }
            promise?.succeed()
        } catch {
            promise?.fail(error)
        }
    }

    // MARK: Carrying out

    private func enqueue(_ frame: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context = self.context else {
            promise?.fail(WebSocketError.connectionClosed)
            return
        }
        if self.hasRoom(context) {
            self.write(frame, promise: nil)
            self.scheduleFlush()
            promise?.succeed()
            return
        }
        switch self.configuration.outboundBackpressure {
        case .fail:
            promise?.fail(WebSocketError.outboundQueueFull(limit: self.configuration.outboundQueueSize))
        case .wait:
            self.waitingWrites.append((frame, promise))
        }
    }

    private func write(_ frame: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context = self.context else {
            promise?.fail(WebSocketError.connectionClosed)
            return
        }
        self.unflushedBytes += frame.readableBytes
        context.write(self.wrapOutboundOut(frame), promise: promise)
        self.needsFlush = true
    }

    /// The application's reader is about to wait for its next event (called on the event loop, from the
    /// connection's task): when nothing is buffered for it, what it wrote goes out now instead of at the end of the
    /// event loop's tick, which takes a hop off every request/response round trip.
    func readerWillWait(taken: Int) {
        if taken == self.delivered, !self.inReadLoop { self.flushIfNeeded() }
    }

    func flushIfNeeded() {
        guard self.needsFlush, let context = self.context else { return }
        self.needsFlush = false
        self.unflushedBytes = 0
        context.flush()
    }

    /// Flushes now unless a read loop is running: then the flush happens once at read-complete, so that all the
    /// answers to one batch of input leave in one write.
    ///
    /// Outside a read loop (an application task sending), the flush is deferred to the end of the event loop's
    /// current batch of tasks, so that a task answering several buffered events writes them in one syscall.
    private func scheduleFlush() {
        guard !self.inReadLoop, let context = self.context else { return }
        if self.unflushedBytes >= Self.eagerFlushBytes || !context.channel.isWritable {
            return self.flushIfNeeded()
        }
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.flushIfNeeded()
        }
    }

    private func writeThenClose(_ frame: ByteBuffer?, context: ChannelHandlerContext) {
        self.cancelTimers()
        guard let frame else {
            self.flushIfNeeded()
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
        self.needsFlush = false
    }

    /// The application took events out of a full buffer (or stopped consuming altogether).
    func resumeInbound(consumerGone: Bool) {
        if consumerGone {
            self.consumerGone = true
            self.barrierReached()
        }
        self.inboundPaused = false
        self.resumeReadingIfPossible()
    }

    /// The longest a close waits for the application to finish answering earlier messages.
    static let answerGrace = TimeAmount.seconds(1)

    /// Closes once the application has taken every event delivered before the close or failure, so that its
    /// answers to earlier messages leave before the close frame; ``answerGrace`` bounds the wait.
    private func closeAfterBarrier() {
        let consumer = self.consumer.withLockedValue { $0 }
        // The reader is idle when it took the close or error already (a consumer takes events as they are read),
        // or waits for an event having taken all before it.
        let idle = consumer.taken == self.delivered || (consumer.waiting && consumer.taken == self.delivered - 1)
        // A reader that has not started yet may still answer what came before (it gets the grace period).
        guard !self.consumerGone, !idle, !self.ended, let context = self.context else {
            // Nobody reads the events any more, or the reader is idle: nobody is answering an earlier message.
            self.finishClose()
            return
        }
        self.closePending = true
        let grace = min(self.configuration.closeTimeout, Self.answerGrace)
        self.barrierTimer = context.eventLoop.assumeIsolated().scheduleTask(in: grace) {
            self.barrierReached()
        }
    }

    /// The application took the close or error event (or stopped listening, or took too long).
    func barrierReached() {
        guard self.closePending else { return }
        self.closePending = false
        self.barrierTimer?.cancel()
        self.finishClose()
    }

    private func finishClose() {
        guard let context = self.context else { return }
        let (frame, closeTCPAt) = self.machine.commitClose(now: .now())
        if let closeTCPAt {
            if let frame { self.write(frame, promise: nil) }
            self.scheduleClose(at: closeTCPAt)
        } else {
            self.writeThenClose(frame, context: context)
        }
    }

    func resumeReadingIfPossible() {
        guard self.readPending, !self.inboundPaused, let context = self.context, context.channel.isWritable else { return }
        self.readPending = false
        context.read()
    }

    private func connectionEnded(context: ChannelHandlerContext) {
        guard !self.ended else { return }
        self.ended = true
        self.cancelTimers()
        let info = self.machine.connectionClosed()
        while let (_, promise) = self.waitingWrites.popFirst() {
            promise?.fail(WebSocketError.connectionClosed)
        }
        if !self.closeEventDelivered {
            self.deliver(.close(info))
        }
        self.finishDelivery()
        self.closedPromise.succeed(info)
    }

    // MARK: Timers

    private func scheduleClose(at deadline: NIODeadline) {
        guard let context = self.context else { return }
        self.flushIfNeeded()
        self.closeTimer?.cancel()
        self.closeTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            if self.machine.closeTimerFired(now: .now()) {
                self.context?.close(promise: nil)
            }
        }
    }

    private func scheduleKeepalive(at deadline: NIODeadline) {
        guard let context = self.context else { return }
        self.keepaliveTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            guard self.context != nil else { return }
            switch self.machine.keepaliveTimerFired(now: .now()) {
            case .sendPing(let frame, let next):
                self.write(frame, promise: nil)
                self.flushIfNeeded()
                self.scheduleKeepalive(at: next)
            case .wait(let next):
                self.scheduleKeepalive(at: next)
            case .pongTimedOut:
                self.deliver(.error(.pongTimeout))
                self.closeAfterBarrier()
            case .stop:
                break
            }
        }
    }

    private func scheduleIdle(at deadline: NIODeadline) {
        guard let context = self.context else { return }
        self.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            guard let (idle, next) = self.machine.idleTimerFired(now: .now()) else { return }
            if idle { self.deliver(.idleTimeout) }
            self.scheduleIdle(at: next)
        }
    }

    private func cancelTimers() {
        self.barrierTimer?.cancel()
        self.closeTimer?.cancel()
        self.keepaliveTimer?.cancel()
        self.idleTimer?.cancel()
    }
}

/// Whether the application is waiting for the next event right now, and how many it has taken.
struct ConsumerState: Sendable {
    var waiting = false
    /// Events the application has taken.
    var taken = 0
    /// Set when the events go to a consumer (``WebSocket/deliverEvents(consumer:)``): completed after the last one.
    var delivery: EventLoopFuture<Void>?
}

/// Tells the handler, on its event loop, when the application drained events or stopped listening.
struct InboundDelegate: NIOAsyncSequenceProducerDelegate {
    let handler: NIOLoopBound<WebSocketChannelHandler>

    func produceMore() {
        self.handler.eventLoop.execute { self.handler.value.resumeInbound(consumerGone: false) }
    }

    func didTerminate() {
        self.handler.eventLoop.execute { self.handler.value.resumeInbound(consumerGone: true) }
    }
}
