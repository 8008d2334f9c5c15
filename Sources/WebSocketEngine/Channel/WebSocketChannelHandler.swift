import DequeModule
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// Carries out what ``WebSocketStateMachine`` (the protocol) and ``DeliveryStateMachine`` (reads, flushes, event
/// delivery, the close barrier) decide on a NIO channel: writes, flushes, timers, closing TCP, handing events to
/// the application (see `WebSocketChannelHandler+Delivery.swift`). It holds no rule of its own: every delivery
/// decision goes through ``run(_:)``. Event-loop bound, not `Sendable`.
final class WebSocketChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    typealias Producer = NIOAsyncSequenceProducer<
        WebSocketEvent, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, InboundDelegate
    >

    var machine: WebSocketStateMachine
    /// When to read, flush, hand events over and close: every decision of delivery (see ``run(_:)``).
    var delivery: DeliveryStateMachine
    let configuration: WebSocketConfiguration
    let eventLoop: any EventLoop
    var context: ChannelHandlerContext?
    /// Events waiting for the consumer, or for the application to choose (``DeliveryStateMachine/held`` counts them).
    var inbox: Deque<WebSocketEvent> = []
    /// The sequence of ``WebSocket/events``, once the application iterates it.
    var source: Producer.Source?
    /// The consumer of ``WebSocket/deliverEvents(consumer:)``, until it is done with the last event.
    var pump: EventPump?
    /// Completed once the consumer is done with the last event.
    var finished: EventLoopPromise<Void>?
    /// The consumer's task, parked until the next event (`true`) or until it is retired (`false`).
    var waiter: UnsafeContinuation<Bool, Never>?
    /// Sends waiting for the outbound queue to drain (backpressure policy `.wait`), in order.
    private var waitingWrites: Deque<(ByteBuffer, EventLoopPromise<Void>?)> = []
    var closeTimer: Scheduled<Void>?
    /// What this connection's queue adds to ``WebSocketConfiguration/outboundBudget`` (see
    /// ``observeOutboundQueue()``), and whether a marker write watches it drain.
    var budgetedBytes = 0
    var watchingDrain = false
    var keepaliveTimer: Scheduled<Void>?
    var idleTimer: Scheduled<Void>?
    private var barrierTimer: Scheduled<Void>?
    private let closedPromise: EventLoopPromise<WebSocketCloseInfo>
    /// What the application's reader does, shared with the connection's event iterator (which may run on any
    /// thread) and with ``WebSocket/deliverEvents(consumer:)``; the only delivery state behind a lock. It is
    /// read on the loop only where a close decides whether to wait at the barrier, never per message.
    let shared = NIOLockedValueBox(SharedReaderState())
    /// Input waits here until the HTTP handlers are gone (see ``activate()``).
    private var isActivated = false
    /// The wire bytes each way, readable from any thread through ``WebSocket``.
    let traffic: WebSocketTraffic

    init(
        machine: WebSocketStateMachine,
        configuration: WebSocketConfiguration,
        eventLoop: any EventLoop,
        closedPromise: EventLoopPromise<WebSocketCloseInfo>
    ) {
        self.machine = machine
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.delivery = DeliveryStateMachine(
            bufferedEvents: configuration.inboundBufferedEvents, closeTimeout: configuration.closeTimeout)
        self.closedPromise = closedPromise
        self.traffic = WebSocketTraffic(observer: configuration.trafficObserver)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.delivery.handlerAdded(isWritable: context.channel.isWritable)
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
        let buffer = self.unwrapInboundIn(data)
        self.traffic.didReceive(buffer.readableBytes)
        self.machine.receive(buffer, now: now)
        guard self.isActivated else { return }
        self.processInput(context: context, now: now)
    }

    /// Starts processing input once the handshake's handlers are out of the pipeline (bytes that followed the
    /// handshake were already buffered by ``channelRead(context:data:)``).
    func activate() {
        guard !self.isActivated, let context = self.context else { return }
        self.isActivated = true
        self.processInput(context: context, now: .now())
        self.run(self.delivery.flushDue())
    }

    /// Carries out the state machine's inbound actions for what was read (at `now`: one clock reading per read).
    private func processInput(context: ChannelHandlerContext, now: NIODeadline) {
        self.delivery.readLoopStarted()
        defer { self.delivery.readLoopEnded() }
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
                self.run(self.delivery.closeReceived(answerOwed: self.machine.owesCloseFrame, reader: self.readerProgress))
                return
            case .failed(let error):
                self.deliver(.error(error))
                self.run(self.delivery.failureDelivered(reader: self.readerProgress))
                return
            }
        }
    }

    /// How far an `AsyncSequence` reader got (read only when a close decides whether to wait for it).
    var readerProgress: ReaderProgress {
        self.shared.withLockedValue { $0.progress }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.run(self.delivery.readComplete())
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        self.run(self.delivery.readRequested())
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.run(self.delivery.writabilityChanged(isWritable: context.channel.isWritable))
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
        self.run(self.delivery.broadcastWritten())
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
        context.channel.isWritable && self.waitingWrites.isEmpty && self.budgetHasRoom
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
            self.run(self.delivery.messageWritten())
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
            self.run(self.delivery.messageWritten())
        } catch {
            promise?.fail(error)
        }
    }

    func close(code: WebSocketCloseCode, reason: String, promise: EventLoopPromise<Void>?) {
        // Closing says the application is done with the events before a pending close: send it now.
        self.run(self.delivery.barrierReached())
        do {
            switch try self.machine.close(code: code, reason: reason, now: .now()) {
            case .send(let frame, let deadline):
                self.write(frame, promise: nil)
                self.run(self.delivery.flushDue())
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

    /// Does what the delivery machine decided: the one place that reads, flushes, hands events over, starts
    /// timers and wakes the consumer's task.
    func run(_ action: DeliveryStateMachine.Action) {
        switch action {
        case .none:
            break
        case .read:
            self.context?.read()
        case .flush(let thenRead):
            self.context?.flush()
            self.observeOutboundQueue()
            if thenRead { self.context?.read() }
        case .scheduleFlush:
            self.eventLoop.assumeIsolated().execute {
                self.run(self.delivery.scheduledFlushRan())
            }
        case .drainWaitingWrites:
            while let context = self.context, context.channel.isWritable, let (frame, promise) = self.waitingWrites.popFirst() {
                self.write(frame, promise: promise)
            }
            self.run(self.delivery.waitingWritesDrained())
        case .hold(let event):
            self.inbox.append(event)
        case .yield(let event):
            self.yield(event)
        case .take(let event):
            self.takeAtOnce(event)
        case .finishClose(let thenRead):
            self.barrierTimer?.cancel()
            self.finishClose()
            if thenRead { self.context?.read() }
        case .startBarrierTimer(let delay):
            guard let context = self.context else { return }
            self.barrierTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                self.run(self.delivery.barrierTimerFired())
            }
        case .startConsumerTask:
            self.startConsumerTask()
        case .wakeConsumerTask:
            self.resumeConsumerTask(more: true)
        case .retireConsumerTask:
            self.resumeConsumerTask(more: false)
        case .finishSequence:
            self.source?.finish()
        case .completeDelivery:
            self.pump = nil
            self.finished?.succeed()
            self.finished = nil
        case .rejectReader:
            preconditionFailure("a rejected reader is handled where it attaches")
        }
    }

    private func enqueue(_ frame: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context = self.context else {
            promise?.fail(WebSocketError.connectionClosed)
            return
        }
        if self.hasRoom(context) {
            self.write(frame, promise: nil)
            self.run(self.delivery.messageWritten())
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

    func write(_ frame: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context = self.context else {
            promise?.fail(WebSocketError.connectionClosed)
            return
        }
        let bytes = frame.readableBytes
        self.traffic.didSend(bytes)
        context.write(self.wrapOutboundOut(frame), promise: promise)
        // Recorded after the write: a flush that the write itself sets off (through a writability change) must not
        // count this frame as flushed.
        self.delivery.wrote(bytes: bytes)
    }

    /// The application's `AsyncSequence` reader is about to wait for its next event, having taken `taken` (called
    /// on the event loop, from the connection's task).
    func readerWillWait(taken: Int) {
        self.run(self.delivery.readerWillWait(taken: taken))
    }

    private func writeThenClose(_ frame: ByteBuffer?, context: ChannelHandlerContext) {
        self.cancelTimers()
        guard let frame else {
            self.run(self.delivery.flushDue())
            context.close(promise: nil)
            return
        }
        self.traffic.didSend(frame.readableBytes)
        context.writeAndFlush(self.wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
        self.delivery.closeFrameFlushed()
    }

    /// The application took a close or error event, or is done with earlier events: a close waiting for it may
    /// go out now.
    func barrierReached() {
        self.run(self.delivery.barrierReached())
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

    private func connectionEnded(context: ChannelHandlerContext) {
        let (first, deliverClose) = self.delivery.connectionEnded()
        guard first else { return }
        self.cancelTimers()
        let info = self.machine.connectionClosed()
        self.releaseOutboundBudget()
        while let (_, promise) = self.waitingWrites.popFirst() {
            promise?.fail(WebSocketError.connectionClosed)
        }
        if deliverClose {
            self.deliver(.close(info))
        }
        self.run(self.delivery.deliveryEnding())
        self.closedPromise.succeed(info)
    }

    private func cancelTimers() {
        self.barrierTimer?.cancel()
        self.closeTimer?.cancel()
        self.keepaliveTimer?.cancel()
        self.idleTimer?.cancel()
    }
}

/// Bound to its channel's event loop: other threads reach it through `NIOLoopBound` (see ``WebSocket``).
@available(*, unavailable)
extension WebSocketChannelHandler: Sendable {}
