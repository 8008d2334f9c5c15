import DequeModule
import Logging
import NIOCore
import WebSocketEngine

/// The events of one connection as the gateway hands them to a handler: `open` first, `close` last, with the
/// route's protection applied on the way (counters, inbound rate limit, idle action) and its codec (one event per
/// decoded record). Iterate it once.
///
/// For an outbound socket the sequence spans its reconnections: `connecting`, then `open` (or `connect_failed`),
/// messages, `disconnected` when the connection is lost, `connecting` / `connect_failed` per attempt after the
/// strategy's wait, `reconnected` (after the queued messages went out), ... and `gave_up` then `close` when the
/// strategy gives up. Iterating drives the attempts, so they stay in order with the messages.
public struct GatewayEvents: AsyncSequence, Sendable {
    public typealias Element = GatewayEvent
    public typealias Failure = Never

    let connection: GatewayConnection
    let rateLimit: RateLimit?
    let idleAction: IdleAction
    let clock: any GatewayClock
    /// Outbound sockets: why the first attempt failed (it was made before the handler started), if it did.
    var firstFailure: String? = nil
    /// Inbound connections: what the gateway does once the handler is done (close, unregister, release the slot).
    /// Set, it lets the default ``GatewayHandler/serve(_:events:)`` drive the callbacks without a parked task.
    var finish: (@Sendable () async -> Void)? = nil

    /// Drives `handler` from the engine's consumer delivery, so that the connection holds no task while idle:
    /// `open` now, then each event through ``GatewayHandler/handleNow(_:_:)`` as it is read, or through the
    /// callbacks in a task on the connection's event loop that ends once the connection goes idle. Returns `false`
    /// (and does nothing) for an outbound socket, whose reconnections need a task of their own.
    func deliverToCallbacks(of handler: some GatewayHandler, _ context: GatewayContext) async -> Bool {
        guard let finish = self.finish, self.connection.link == nil, let socket = self.connection.socket else { return false }
        let iteration = Iteration(
            connection: self.connection,
            bucket: self.rateLimit.map { TokenBucket(limit: $0, now: self.clock.now()) },
            idleAction: self.idleAction, clock: self.clock,
            decoder: self.connection.codec.map { MessageDecoder(codec: $0, maxBuffered: self.connection.maxMessageSize) },
            firstFailure: nil)
        let pump = GatewayCallbackPump(iteration: iteration, eventLoop: socket.eventLoop, handler: handler, context: context, whenDone: finish)
        iteration.startCallbacks()
        await pump.dispatchPending()
        socket.deliverEvents(consumer: pump)
        return true
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(
            connection: self.connection,
            bucket: self.rateLimit.map { TokenBucket(limit: $0, now: self.clock.now()) },
            idleAction: self.idleAction,
            clock: self.clock,
            decoder: self.connection.codec.map { MessageDecoder(codec: $0, maxBuffered: self.connection.maxMessageSize) },
            firstFailure: self.firstFailure)
    }

    /// Produces the gateway's events from the engine's. Its state lives in one object: the iterator sits in the
    /// frame of the connection's task for as long as the connection lives, so it is kept to one reference.
    public struct AsyncIterator: AsyncIteratorProtocol {
        private let state: Iteration

        init(connection: GatewayConnection, bucket: TokenBucket?, idleAction: IdleAction, clock: any GatewayClock, decoder: MessageDecoder?, firstFailure: String?) {
            self.state = Iteration(
                connection: connection, bucket: bucket, idleAction: idleAction, clock: clock, decoder: decoder,
                firstFailure: firstFailure)
        }

        public mutating func next() async -> GatewayEvent? {
            await self.state.next()
        }
    }

    /// The iterator's state and logic. Used by one task at a time (the connection's), or on the connection's event
    /// loop by ``GatewayCallbackPump``; never shared across threads.
    final class Iteration {
        private enum Stage {
            case opening
            case session
            case waiting(retry: Int)
            case attempting(retry: Int)
            case finished
        }

        let connection: GatewayConnection
        var bucket: TokenBucket?
        /// The rate limit closed the connection: what still arrives is discarded, neither delivered nor counted
        /// as rate limited again (one close is one rate-limited connection, however much was in flight).
        private var closedByRateLimit = false
        let idleAction: IdleAction
        let clock: any GatewayClock
        var decoder: MessageDecoder?
        let firstFailure: String?
        private var stage = Stage.opening
        private var base: WebSocketEvents.AsyncIterator?
        private var pending: Deque<GatewayEvent.Kind> = []
        private var attempts = 1
        private var everConnected = false
        private var failedInARow = 0
        private var lastFailure = ""
        private var lastClose: (code: UInt16, reason: String) = (1006, "no connection")
        /// Callback delivery: the event ``GatewayHandler/handleNow(_:_:)`` declined, for its callback.
        var declined: GatewayEvent?

        init(connection: GatewayConnection, bucket: TokenBucket?, idleAction: IdleAction, clock: any GatewayClock, decoder: MessageDecoder?, firstFailure: String?) {
            self.connection = connection
            self.bucket = bucket
            self.idleAction = idleAction
            self.clock = clock
            self.decoder = decoder
            self.firstFailure = firstFailure
        }

        // The helpers of `next()` are kept out of it: its frame lives as long as the connection, theirs only while
        // they run.
        func next() async -> GatewayEvent? {
            while true {
                if let kind = self.pending.popFirst() { return self.event(kind) }
                switch self.stage {
                case .opening:
                    self.open()
                case .session:
                    // The engine's iterator is taken out while it waits (no access to this object spans the wait).
                    var base = self.base
                    self.base = nil
                    let event = await base?.next()
                    self.base = base
                    guard let event else {
                        self.stage = .finished
                        continue
                    }
                    self.handle(event)
                case .waiting(let retry):
                    await self.wait(retry: retry)
                case .attempting(let retry):
                    await self.attempt(retry: retry)
                case .finished:
                    return nil
                }
            }
        }

        /// Callback delivery: the session starts at once (the engine delivers its events to ``handle(_:)``).
        func startCallbacks() {
            self.everConnected = true
            self.pending.append(.open)
            self.stage = .session
        }

        /// The next event made by ``handle(_:)``, if any.
        func nextPending() -> GatewayEvent? {
            self.pending.popFirst().map(self.event)
        }

        /// Whether the connection's last event (`close`) was made.
        var isFinished: Bool {
            if case .finished = self.stage { return true }
            return false
        }

        @inline(never)
        private func open() {
            if self.connection.link != nil { self.pending.append(.connecting(attempt: 1)) }
            if let reason = self.firstFailure {
                self.failedInARow = 1
                self.lastFailure = reason
                self.pending.append(.connectFailed(attempt: 1, reason: reason))
                self.stage = .waiting(retry: 1)
            } else {
                self.base = self.connection.socket?.events.makeAsyncIterator()
                self.everConnected = true
                self.pending.append(.open)
                self.stage = .session
            }
        }

        @inline(never)
        func handle(_ event: WebSocketEvent) {
            switch event {
            case .text(let text):
                self.deliver(bytes: text.utf8.count, text: text, binary: nil)
            case .binary(let data):
                self.deliver(bytes: data.readableBytes, text: nil, binary: data)
            case .ping(let payload):
                // Pings take from the rate limit's bucket too (the engine has answered them already): a flood of
                // pings closes the connection like a flood of messages, or is not reported under `drop`.
                if self.admit(countingBytes: nil) == .admitted { self.pending.append(.ping(payload)) }
            case .pong(let payload):
                self.pending.append(.pong(payload))
            case .idleTimeout:
                if self.idleAction == .close { self.connection.startClose(code: .goingAway, reason: "idle timeout") }
                self.pending.append(.idleTimeout)
            case .error(let error):
                self.pending.append(.error("\(error)"))
            case .close(let info):
                self.lost(code: info.code.rawValue, reason: info.reason)
            }
        }

        /// The session ended: reconnect if the socket is outbound and its strategy allows, otherwise finish.
        private func lost(code: UInt16, reason: String) {
            self.base = nil
            if let link = self.connection.link, !self.connection.isClosing, link.strategy.retries {
                link.lost()
                self.lastClose = (code, reason)
                self.pending.append(.disconnected(code: code, reason: reason))
                self.log(.disconnected(code: code, reason: reason))
                self.stage = .waiting(retry: 1)
            } else {
                self.connection.markClosing()
                self.connection.link?.stop(failing: .socketNotOpen(self.connection.id.rawValue))
                self.pending.append(.close(code: code, reason: reason))
                self.stage = .finished
            }
        }

        @inline(never)
        private func wait(retry: Int) async {
            guard let link = self.connection.link else { return self.stage = .finished }
            guard let delay = link.strategy.delay(beforeRetry: retry) else {
                link.stop(failing: .reconnectGaveUp(self.connection.id.rawValue, attempts: self.failedInARow))
                OutboundLink.count(self.connection.id, "gave_up")
                self.connection.markClosing()
                self.pending.append(.gaveUp(attempts: self.failedInARow, reason: self.lastFailure))
                self.log(.gaveUp(attempts: self.failedInARow, reason: self.lastFailure))
                self.pending.append(.close(code: self.lastClose.code, reason: "gave up reconnecting after \(self.failedInARow) attempts"))
                self.stage = .finished
                return
            }
            guard await link.sleep(delay) else {
                self.connection.markClosing()
                self.pending.append(.close(code: WebSocketCloseCode.normalClosure.rawValue, reason: "closed while reconnecting"))
                self.stage = .finished
                return
            }
            self.attempts += 1
            self.pending.append(.connecting(attempt: self.attempts))
            self.stage = .attempting(retry: retry)
        }

        @inline(never)
        private func attempt(retry: Int) async {
            guard let link = self.connection.link else { return self.stage = .finished }
            switch await link.connect(attempt: self.attempts) {
            case .connected(let socket):
                guard link.attach(socket) else {
                    self.connection.markClosing()
                    self.pending.append(.close(code: WebSocketCloseCode.goingAway.rawValue, reason: "closed while reconnecting"))
                    self.stage = .finished
                    return
                }
                let connection = self.connection
                await link.flush { prepared, socket in await connection.transmit(prepared, on: socket) }
                self.failedInARow = 0
                self.decoder = self.decoder.map { MessageDecoder(codec: $0.codec, maxBuffered: $0.maxBuffered) }
                self.base = socket.events.makeAsyncIterator()
                self.pending.append(self.everConnected ? .reconnected(attempt: self.attempts) : .open)
                if self.everConnected { self.log(.reconnected(attempt: self.attempts)) }
                self.everConnected = true
                self.stage = .session
            case .failed(let reason):
                self.failedInARow += 1
                self.lastFailure = reason
                self.pending.append(.connectFailed(attempt: self.attempts, reason: reason))
                self.log(.connectFailed(attempt: self.attempts, reason: reason))
                self.stage = .waiting(retry: retry + 1)
            }
        }

        /// Logs an outbound socket's change of connection. Failed attempts in a row are logged at the 1st, 2nd,
        /// 4th, 8th... so that a fast reconnect interval against a dead upstream does not flood the log.
        private func log(_ kind: GatewayEvent.Kind) {
            guard let link = self.connection.link else { return }
            var metadata = self.connection.logMetadata
            metadata["url"] = "\(link.url)"
            switch kind {
            case .disconnected(let code, let reason):
                metadata["close_code"] = "\(code)"
                metadata["close_reason"] = "\(reason)"
                link.logger.warning("outbound socket disconnected; reconnecting", metadata: metadata)
            case .connectFailed(let attempt, let reason):
                guard self.failedInARow & (self.failedInARow - 1) == 0 else { return }
                metadata["attempt"] = "\(attempt)"
                metadata["failures_in_a_row"] = "\(self.failedInARow)"
                metadata["error"] = "\(reason)"
                link.logger.warning("outbound socket connect attempt failed (logged at 1, 2, 4, 8... failures in a row)", metadata: metadata)
            case .reconnected(let attempt):
                metadata["attempt"] = "\(attempt)"
                link.logger.info("outbound socket reconnected", metadata: metadata)
            case .gaveUp(let attempts, let reason):
                metadata["attempts"] = "\(attempts)"
                metadata["error"] = "\(reason)"
                link.logger.error("outbound socket gave up reconnecting", metadata: metadata)
            default:
                return
            }
        }

        /// Counts a message, applies the rate limit, then the codec.
        private func deliver(bytes: Int, text: String?, binary: ByteBuffer?) {
            switch self.admit(countingBytes: bytes) {
            case .closing: return
            case .dropped: return self.pending.append(.error("rate limit exceeded: message dropped"))
            case .admitted: break
            }
            guard var decoder = self.decoder else {
                if let text { self.pending.append(.text(text)) } else if let binary { self.pending.append(.binary(binary)) }
                return
            }
            let input = text.map { Array($0.utf8) } ?? Array(binary!.readableBytesView)
            for output in decoder.decode(input, socket: self.connection.id.rawValue) {
                switch output {
                case .text(let text): self.pending.append(.text(text))
                case .binary(let data): self.pending.append(.binary(data))
                case .error(let reason): self.pending.append(.error(reason))
                }
            }
            self.decoder = decoder
        }

        private enum Admission {
            case admitted
            case dropped
            case closing
        }

        /// Counts an inbound message of `countingBytes` (`nil` for a ping, which is not counted as a message) and
        /// applies the rate limit.
        private func admit(countingBytes bytes: Int?) -> Admission {
            if let bytes { self.connection.countInbound(bytes: bytes) }
            guard var bucket = self.bucket else { return .admitted }
            if self.closedByRateLimit { return .closing }
            defer { self.bucket = bucket }
            if bucket.take(now: self.clock.now()) { return .admitted }
            self.connection.metrics.rateLimited(bucket.limit.onExceed)
            switch bucket.limit.onExceed {
            case .close:
                self.closedByRateLimit = true
                self.connection.startClose(code: .policyViolation, reason: "rate limit exceeded")
                return .closing
            case .drop:
                return .dropped
            }
        }

        private func event(_ kind: GatewayEvent.Kind) -> GatewayEvent {
            GatewayEvent(kind: kind, connection: self.connection, timestamp: GatewayConnection.epochMilliseconds())
        }
    }
}

/// Drives a handler from the engine's event delivery (``WebSocket/deliverEvents(consumer:)``): the one object the
/// delivery holds for an idle connection. Each engine event becomes the gateway's (counters, rate limit, codec)
/// on the connection's event loop; the handler takes them at once (``GatewayHandler/handleNow(_:_:)``) or in
/// ``finish()``, through its callbacks.
///
/// Its state is the connection's iteration, bound to the connection's event loop: ``take(_:)`` runs there, and
/// ``finish()`` in a task that prefers that loop's executor (`NIOLoopBound` checks it on every access).
final class GatewayCallbackPump: WebSocketEventConsumer, Sendable {
    private let iteration: NIOLoopBound<GatewayEvents.Iteration>
    private let handler: any GatewayHandler
    private let context: GatewayContext
    /// What the gateway does when a handler is done (after the close event).
    private let whenDone: @Sendable () async -> Void

    init(
        iteration: GatewayEvents.Iteration, eventLoop: any EventLoop, handler: any GatewayHandler, context: GatewayContext,
        whenDone: @escaping @Sendable () async -> Void
    ) {
        self.iteration = NIOLoopBound(iteration, eventLoop: eventLoop)
        self.handler = handler
        self.context = context
        self.whenDone = whenDone
    }

    func take(_ event: WebSocketEvent) -> Bool {
        let iteration = self.iteration.value
        iteration.handle(event)
        while let next = iteration.nextPending() {
            guard self.handler.handleNow(next, self.context) else {
                iteration.declined = next
                return false
            }
        }
        return !iteration.isFinished
    }

    func finish() async {
        if let declined = self.iteration.value.declined {
            self.iteration.value.declined = nil
            await self.handler.dispatch(declined, self.context)
        }
        await self.dispatchPending()
        if self.iteration.value.isFinished { await self.whenDone() }
    }

    func dispatchPending() async {
        while let event = self.iteration.value.nextPending() {
            await self.handler.dispatch(event, self.context)
        }
    }
}

/// The iteration is confined to one task or one event loop (see ``GatewayCallbackPump``).
@available(*, unavailable)
extension GatewayEvents.Iteration: Sendable {}
