import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// An open WebSocket connection, the same type for servers and clients. Every method is safe to call from any
/// task; sends are carried out in call order on the connection's event loop.
///
/// Inbound data arrives either through ``events`` (an `AsyncSequence` of every ``WebSocketEvent``), through
/// ``receive()`` (the next whole message, for request-reply use), through ``run(_:)`` with a
/// ``WebSocketEventHandler``, or through a callback with ``deliverEvents(to:)`` (no task waits while the connection
/// is idle). Use one of them per connection; events that arrive before it is chosen wait for it. When the consumer
/// falls behind, the connection stops reading from the network until it catches up.
public final class WebSocket: Sendable {
    /// A process-unique number for logs and lookups.
    public let id: UInt64
    /// Whether this end is the server or the client.
    public let role: WebSocketRole
    /// The negotiated subprotocol, if any.
    public let subprotocol: String?
    /// The negotiated permessage-deflate parameters, if compression is in use.
    public let compression: PerMessageDeflateParameters?
    /// Whether the connection runs over TLS.
    public let isSecure: Bool
    /// The peer's address.
    public let remoteAddress: SocketAddress?
    /// This end's address.
    public let localAddress: SocketAddress?
    /// The upgrade request (for a server) or the request this client sent.
    public let request: HTTPRequestHead
    /// The event loop the connection runs on.
    public let eventLoop: any EventLoop

    let channel: any Channel
    private let handler: NIOLoopBound<WebSocketChannelHandler>
    /// Made when ``events`` is first used (a connection served by a callback never needs one).
    private let sequence = NIOLockedValueBox<WebSocketChannelHandler.Producer?>(nil)
    private let bufferedEvents: Int
    private let receiver: NIOLockedValueBox<Receiver>
    let closed: EventLoopFuture<WebSocketCloseInfo>
    private let shared: NIOLockedValueBox<SharedReaderState>

    private static let nextID = NIOLockedValueBox<UInt64>(0)

    /// The state of ``receive()``'s private iterator.
    private enum Receiver: @unchecked Sendable {
        case unused
        case idle(WebSocketEvents.AsyncIterator)
        case busy
    }

    /// Adds the WebSocket handler to a channel whose handshake just completed (on its event loop).
    static func install(
        on channel: any Channel,
        role: WebSocketRole,
        request: HTTPRequestHead,
        subprotocol: String?,
        compression: PerMessageDeflateParameters?,
        isSecure: Bool,
        configuration: WebSocketConfiguration,
        position: ChannelPipeline.SynchronousOperations.Position = .last
    ) throws -> WebSocket {
        let eventLoop = channel.eventLoop
        let codec = compression.map {
            PerMessageDeflateCodec(parameters: $0, role: role, configuration: configuration.compression ?? .init())
        }
        let machine = WebSocketStateMachine(
            configuration: .init(
                role: role,
                maxFrameSize: configuration.maxFrameSize,
                maxMessageSize: configuration.maxMessageSize,
                closeTimeout: configuration.closeTimeout,
                keepalive: configuration.keepalive.map { ($0.interval, $0.timeout) },
                idleTimeout: configuration.idleTimeout
            ),
            compression: codec,
            allocator: channel.allocator,
            now: .now()
        )
        let closedPromise = eventLoop.makePromise(of: WebSocketCloseInfo.self)
        let handler = WebSocketChannelHandler(
            machine: machine, configuration: configuration, eventLoop: eventLoop, closedPromise: closedPromise)
        // The connection keeps its request for its whole life: copy the headers into an array of their exact
        // size (SwiftNIO's decoder reserves room for 16).
        var request = request
        request.headers = HTTPHeaders(request.headers.map { ($0.name, $0.value) })
        let socket = WebSocket(
            role: role, request: request, subprotocol: subprotocol, compression: compression, isSecure: isSecure,
            channel: channel, handler: handler, closed: closedPromise.futureResult)
        try channel.syncOptions?.setOption(
            ChannelOptions.writeBufferWaterMark,
            value: .init(low: configuration.outboundQueueSize / 2, high: configuration.outboundQueueSize))
        try channel.pipeline.syncOperations.addHandler(handler, position: position)
        return socket
    }

    private init(
        role: WebSocketRole,
        request: HTTPRequestHead,
        subprotocol: String?,
        compression: PerMessageDeflateParameters?,
        isSecure: Bool,
        channel: any Channel,
        handler: WebSocketChannelHandler,
        closed: EventLoopFuture<WebSocketCloseInfo>
    ) {
        self.id = Self.nextID.withLockedValue { $0 += 1; return $0 }
        self.role = role
        self.request = request
        self.subprotocol = subprotocol
        self.compression = compression
        self.isSecure = isSecure
        self.channel = channel
        self.eventLoop = channel.eventLoop
        self.remoteAddress = channel.remoteAddress
        self.localAddress = channel.localAddress
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.bufferedEvents = handler.configuration.inboundBufferedEvents
        self.receiver = NIOLockedValueBox(.unused)
        self.closed = closed
        self.shared = handler.shared
    }

    /// Takes the handshake's handlers (the caller's `context` and `httpHandlers`) out of the pipeline, then starts
    /// processing input. Removing the HTTP decoder forwards any bytes that followed the handshake to the
    /// WebSocket handler, which holds them until it is activated with only itself left to write through.
    func finishUpgrade(context: ChannelHandlerContext, removing httpHandlers: [any RemovableChannelHandler]) {
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        let removals = httpHandlers.map { handler in
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.pipeline.syncOperations.removeHandler(handler, promise: promise)
            return promise.futureResult
        }
        let handler = self.handler
        EventLoopFuture.andAllComplete(removals, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            handler.value.activate()
        }
    }

    /// Every event of the connection in order, ending with ``WebSocketEvent/close(_:)``. Iterate it once.
    public var events: WebSocketEvents {
        WebSocketEvents(base: self.eventSequence, shared: self.shared, onBarrier: self.barrierReached, onWait: self.readerWillWait)
    }

    /// The sequence behind ``events``, made on first use; the events held until then go into it first.
    private var eventSequence: WebSocketChannelHandler.Producer {
        self.sequence.withLockedValue { sequence in
            if let sequence { return sequence }
            let produced = WebSocketChannelHandler.Producer.makeSequence(
                backPressureStrategy: .init(lowWatermark: max(1, self.bufferedEvents / 4), highWatermark: self.bufferedEvents),
                finishOnDeinit: false,
                delegate: InboundDelegate(handler: self.handler))
            let handler = self.handler
            let source = produced.source
            if self.eventLoop.inEventLoop {
                handler.value.attach(source)
            } else {
                self.eventLoop.execute { handler.value.attach(source) }
            }
            sequence = produced.sequence
            return produced.sequence
        }
    }

    /// Hands every event of the connection to `body`, in order, one call at a time, ending with
    /// ``WebSocketEvent/close(_:)``. The calls run in a task on the connection's event loop that the first event
    /// starts, that waits between events and that ends after the close event or after a whole idle sweep period
    /// (one to two seconds without an event), so an idle connection costs no task. Not for use together with
    /// ``events``, ``receive()`` or ``run(_:)``.
    ///
    /// When a ``WebSocketServer`` handler calls this, the connection stays served after the handler returns, until
    /// `body` has returned for the close event.
    ///
    /// - Returns: a future completed once `body` has returned for the close event (failed with
    ///   ``WebSocketError/eventsTakenByCallback`` if a callback was already chosen, with
    ///   ``WebSocketError/concurrentReceive`` if the events were already taken another way).
    @discardableResult
    public func deliverEvents(to body: @escaping @Sendable (WebSocketEvent) async -> Void) -> EventLoopFuture<Void> {
        self.deliverEvents(consumer: CallbackConsumer(body))
    }

    /// Hands every event of the connection to `consumer`, in order, ending with ``WebSocketEvent/close(_:)``: each
    /// one to ``WebSocketEventConsumer/take(_:)`` on the connection's event loop (as soon as it is read when the
    /// consumer is between events), and to
    /// ``WebSocketEventConsumer/finish()`` in a task when the consumer needs to suspend. The task exists only
    /// while needed, as with ``deliverEvents(to:)``; a consumer that never needs it costs no task at all. Not for
    /// use together with ``events``, ``receive()`` or ``run(_:)``.
    ///
    /// - Returns: a future completed once the consumer is done with the close event (failed as for
    ///   ``deliverEvents(to:)``).
    @discardableResult
    public func deliverEvents(consumer: some WebSocketEventConsumer) -> EventLoopFuture<Void> {
        let finished = self.eventLoop.makePromise(of: Void.self)
        let first = self.shared.withLockedValue { shared in
            guard shared.delivery == nil else { return false }
            shared.delivery = finished.futureResult
            return true
        }
        guard first else {
            finished.fail(WebSocketError.eventsTakenByCallback)
            return finished.futureResult
        }
        let handler = self.handler
        if self.eventLoop.inEventLoop {
            handler.value.startConsumer(consumer, finished: finished)
        } else {
            self.eventLoop.execute { handler.value.startConsumer(consumer, finished: finished) }
        }
        return finished.futureResult
    }

    /// Completed once the consumer of ``deliverEvents(consumer:)`` (or the callback of ``deliverEvents(to:)``) is
    /// done with the last event; `nil` if neither was used.
    public var deliveryFinished: EventLoopFuture<Void>? {
        self.shared.withLockedValue { $0.delivery }
    }

    /// The reader is about to wait: when it runs on the connection's event loop, flush what it wrote.
    private var readerWillWait: @Sendable (Int) -> Void {
        let handler = self.handler
        let eventLoop = self.eventLoop
        return { taken in
            if eventLoop.inEventLoop { handler.value.readerWillWait(taken: taken) }
        }
    }

    /// The application took a close or error event: a close waiting for it may go out now.
    private var barrierReached: @Sendable () -> Void {
        let handler = self.handler
        let eventLoop = self.eventLoop
        return { eventLoop.execute { handler.value.barrierReached() } }
    }

    /// Whether the consumer of ``deliverEvents(consumer:)`` has a task now, running or parked (for tests).
    var callbackTaskExists: Bool {
        get async throws {
            let handler = self.handler
            return try await self.eventLoop.submit { handler.value.delivery.draining }.get()
        }
    }

    /// How many events wait for the consumer of ``deliverEvents(consumer:)`` while it is busy (for tests).
    var eventsWaiting: Int {
        get async throws {
            let handler = self.handler
            return try await self.eventLoop.submit { handler.value.inbox.count }.get()
        }
    }

    /// Whether the application is parked waiting for the next event (for tests).
    var readerIsWaiting: Bool { self.shared.withLockedValue { $0.progress.waiting } }

    /// Whether the connection is still open at the TCP level.
    public var isOpen: Bool { self.channel.isActive }

    /// How the connection ended; waits until it has. Waiting here also tells the connection that the
    /// application is done with earlier events, so a close the peer started is answered at once.
    public var closeInfo: WebSocketCloseInfo {
        get async {
            self.barrierReached()
            // The promise is always completed when the handler goes away.
            return (try? await self.closed.get()) ?? WebSocketCloseInfo(code: .abnormalClosure, initiatedLocally: false)
        }
    }

    /// Waits for the next whole message; `nil` once the connection is closed. Pings, pongs and idle events are
    /// skipped (pings are answered automatically). Not for use together with ``events``.
    public func receive() async throws -> WebSocketMessage? {
        if self.deliveryFinished != nil { throw WebSocketError.eventsTakenByCallback }
        var iterator: WebSocketEvents.AsyncIterator = try self.receiver.withLockedValue { state in
            switch state {
            case .unused:
                state = .busy
                return self.events.makeAsyncIterator()
            case .idle(let iterator):
                state = .busy
                return iterator
            case .busy:
                throw WebSocketError.concurrentReceive
            }
        }
        defer { self.receiver.withLockedValue { [iterator] in $0 = .idle(iterator) } }
        while let event = await iterator.next() {
            switch event {
            case .text(let text): return .text(text)
            case .binary(let buffer): return .binary(buffer)
            case .close: return nil
            case .ping, .pong, .idleTimeout, .error: continue
            }
        }
        return nil
    }

    /// Sends a whole message. Returns once it is queued for the network; waits or fails by the configured
    /// backpressure policy when the outbound queue is full.
    public func send(_ message: WebSocketMessage) async throws {
        // From the connection's own event loop (a task running there): no hop, no promise unless it must wait.
        if self.eventLoop.inEventLoop {
            if let pending = try self.handler.value.sendFromLoop(message) { try await pending.get() }
            return
        }
        try await self.onLoop { handler, promise in handler.send(message, promise: promise) }
    }

    /// Sends `message` at once, without waiting, when called on the connection's event loop (as from
    /// ``WebSocketEventConsumer/take(_:)``) and the outbound queue has room. Otherwise it sends nothing and returns
    /// `false`: then use ``send(_:)``, which waits or fails according to the backpressure policy.
    ///
    /// - Throws: what ``send(_:)`` throws when the message cannot be sent at all (the connection is closing or
    ///   closed, a fragmented send is in progress).
    public func trySend(_ message: WebSocketMessage) throws -> Bool {
        guard self.eventLoop.inEventLoop else { return false }
        return try self.handler.value.trySendFromLoop(message)
    }

    /// Sends a message prepared for many connections (see ``WebSocketPreparedMessage``): the encoded frame is
    /// shared with every other connection that would put the same bytes on the wire.
    public func send(_ prepared: WebSocketPreparedMessage) async throws {
        if self.eventLoop.inEventLoop {
            if let pending = try self.handler.value.sendFromLoop(prepared) { try await pending.get() }
            return
        }
        try await self.onLoop { handler, promise in handler.send(prepared, promise: promise) }
    }

    /// Sends one prepared message to many connections with one hop per event loop instead of one per
    /// connection. A connection whose outbound queue is full fails at once (whatever its backpressure policy), so
    /// one slow connection never holds up the others.
    ///
    /// - Returns: the failures, as indexes into `sockets` with their errors.
    public static func send(
        _ prepared: WebSocketPreparedMessage,
        to sockets: [WebSocket]
    ) async -> [(index: Int, error: WebSocketError)] {
        var byLoop: [ObjectIdentifier: (any EventLoop, [(Int, WebSocket)])] = [:]
        for (index, socket) in sockets.enumerated() {
            byLoop[ObjectIdentifier(socket.eventLoop), default: (socket.eventLoop, [])].1.append((index, socket))
        }
        let futures = byLoop.values.map { eventLoop, members in
            eventLoop.submit {
                var failures: [(index: Int, error: WebSocketError)] = []
                for (index, socket) in members {
                    do throws(WebSocketError) {
                        try socket.handler.value.sendNow(prepared)
                    } catch {
                        failures.append((index, error))
                    }
                }
                return failures
            }
        }
        var failures: [(index: Int, error: WebSocketError)] = []
        for future in futures {
            failures += (try? await future.get()) ?? []
        }
        return failures
    }

    /// Sends a text message.
    public func send(text: String) async throws {
        try await self.send(.text(text))
    }

    /// Sends a binary message.
    public func send(binary: ByteBuffer) async throws {
        try await self.send(.binary(binary))
    }

    /// Sends a large message as a stream of fragments: `body` gets a writer whose every `write` becomes one frame.
    /// The message ends when `body` returns (an empty final frame closes it if needed).
    public func sendFragmented(text isText: Bool, _ body: (WebSocketFragmentWriter) async throws -> Void) async throws {
        let writer = WebSocketFragmentWriter(socket: self, isText: isText)
        try await body(writer)
        try await writer.finish()
    }

    func sendFragment(_ payload: ByteBuffer, isText: Bool, fin: Bool) async throws {
        try await self.onLoop { handler, promise in
            handler.sendFragment(payload, isText: isText, fin: fin, promise: promise)
        }
    }

    /// Sends a ping (at most 125 bytes of payload).
    public func ping(_ payload: ByteBuffer = ByteBuffer()) async throws {
        try await self.onLoop { handler, promise in handler.sendControl(.ping, payload: payload, promise: promise) }
    }

    /// Sends an unsolicited pong (at most 125 bytes of payload).
    public func pong(_ payload: ByteBuffer = ByteBuffer()) async throws {
        try await self.onLoop { handler, promise in handler.sendControl(.pong, payload: payload, promise: promise) }
    }

    /// Starts the closing handshake and waits until the connection is closed (at most the close timeout).
    ///
    /// - Returns: how the connection ended (usually the peer's echo of `code`).
    @discardableResult
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") async throws -> WebSocketCloseInfo {
        try await self.onLoop { handler, promise in handler.close(code: code, reason: reason, promise: promise) }
        return await self.closeInfo
    }

    /// Starts the closing handshake without waiting for it to finish (for example from a broadcast loop).
    public func startClose(code: WebSocketCloseCode = .normalClosure, reason: String = "") {
        let handler = self.handler
        self.eventLoop.execute { handler.value.close(code: code, reason: reason, promise: nil) }
    }

    /// Runs `handler` for every event of the connection until it closes.
    public func run(_ handler: some WebSocketEventHandler) async {
        await handler.onOpen(self)
        for await event in self.events {
            switch event {
            case .text(let text): await handler.onText(self, text)
            case .binary(let buffer): await handler.onBinary(self, buffer)
            case .ping(let payload): await handler.onPing(self, payload)
            case .pong(let payload): await handler.onPong(self, payload)
            case .idleTimeout: await handler.onIdleTimeout(self)
            case .error(let error): await handler.onError(self, error)
            case .close(let info): await handler.onClose(self, info)
            }
        }
    }

    private func onLoop(_ body: @escaping @Sendable (WebSocketChannelHandler, EventLoopPromise<Void>) -> Void) async throws {
        let promise = self.eventLoop.makePromise(of: Void.self)
        if self.eventLoop.inEventLoop {
            body(self.handler.value, promise)
        } else {
            self.eventLoop.execute { body(self.handler.value, promise) }
        }
        try await promise.futureResult.get()
    }
}

/// The events of one connection; see ``WebSocket/events``.
public struct WebSocketEvents: AsyncSequence, Sendable {
    public typealias Element = WebSocketEvent
    public typealias Failure = Never

    let base: WebSocketChannelHandler.Producer
    let shared: NIOLockedValueBox<SharedReaderState>
    let onBarrier: @Sendable () -> Void
    let onWait: @Sendable (Int) -> Void

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.base.makeAsyncIterator(), shared: self.shared, onBarrier: self.onBarrier, onWait: self.onWait)
    }

    /// Iterates the events; taking a close or error event lets a pending close go out.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: WebSocketChannelHandler.Producer.AsyncIterator
        /// The reader's progress, which the connection reads when a close decides whether to wait for it.
        let shared: NIOLockedValueBox<SharedReaderState>
        let onBarrier: @Sendable () -> Void
        let onWait: @Sendable (Int) -> Void

        public mutating func next() async -> WebSocketEvent? {
            let taken = self.shared.withLockedValue {
                $0.progress.waiting = true
                return $0.progress.taken
            }
            self.onWait(taken)
            let event = await self.base.next()
            self.shared.withLockedValue {
                $0.progress.waiting = false
                $0.progress.taken += 1
            }
            switch event {
            case .error?, .close?: self.onBarrier()
            default: break
            }
            return event
        }
    }
}

/// Writes the fragments of one message; see ``WebSocket/sendFragmented(text:_:)``.
public final class WebSocketFragmentWriter: Sendable {
    private let socket: WebSocket
    private let isText: Bool
    private let finished = NIOLockedValueBox(false)

    init(socket: WebSocket, isText: Bool) {
        self.socket = socket
        self.isText = isText
    }

    /// Sends one fragment (UTF-8 bytes for a text message; the whole message must be valid UTF-8).
    public func write(_ payload: ByteBuffer) async throws {
        try await self.socket.sendFragment(payload, isText: self.isText, fin: false)
    }

    /// Sends one fragment of text.
    public func write(_ text: String) async throws {
        try await self.write(ByteBuffer(string: text))
    }

    /// Sends the final fragment; called automatically when the body returns.
    public func finish(_ payload: ByteBuffer = ByteBuffer()) async throws {
        let alreadyFinished = self.finished.withLockedValue { value in
            defer { value = true }
            return value
        }
        guard !alreadyFinished else { return }
        try await self.socket.sendFragment(payload, isText: self.isText, fin: true)
    }
}

/// Callbacks for every event of a connection, each with a default that does nothing; see ``WebSocket/run(_:)``.
public protocol WebSocketEventHandler: Sendable {
    /// The connection is open.
    func onOpen(_ socket: WebSocket) async
    /// A text message arrived.
    func onText(_ socket: WebSocket, _ text: String) async
    /// A binary message arrived.
    func onBinary(_ socket: WebSocket, _ data: ByteBuffer) async
    /// A ping arrived (already answered).
    func onPing(_ socket: WebSocket, _ payload: ByteBuffer) async
    /// A pong arrived.
    func onPong(_ socket: WebSocket, _ payload: ByteBuffer) async
    /// No data moved for the idle timeout.
    func onIdleTimeout(_ socket: WebSocket) async
    /// The connection failed (a close follows).
    func onError(_ socket: WebSocket, _ error: WebSocketError) async
    /// The connection closed.
    func onClose(_ socket: WebSocket, _ info: WebSocketCloseInfo) async
}

extension WebSocketEventHandler {
    public func onOpen(_ socket: WebSocket) async {}
    public func onText(_ socket: WebSocket, _ text: String) async {}
    public func onBinary(_ socket: WebSocket, _ data: ByteBuffer) async {}
    public func onPing(_ socket: WebSocket, _ payload: ByteBuffer) async {}
    public func onPong(_ socket: WebSocket, _ payload: ByteBuffer) async {}
    public func onIdleTimeout(_ socket: WebSocket) async {}
    public func onError(_ socket: WebSocket, _ error: WebSocketError) async {}
    public func onClose(_ socket: WebSocket, _ info: WebSocketCloseInfo) async {}
}
