import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// An open WebSocket connection, the same type for servers and clients. Every method is safe to call from any
/// task; sends are carried out in call order on the connection's event loop.
///
/// Inbound events are read one of these ways, one per connection (events that arrive before the choice wait for
/// it; a second way fails with ``WebSocketError/concurrentReceive`` or ``WebSocketError/eventsTakenByCallback``):
/// - ``receive()``: the next whole message, for simple request/reply clients and tests; pings, pongs and idle
///   events are skipped.
/// - ``events``: every ``WebSocketEvent`` as an `AsyncSequence`, for a task that owns the connection and wants
///   control frames, errors and the close too (the gateway's iterator, `wsgate connect`).
/// - ``deliverEvents(consumer:)``: a ``WebSocketEventConsumer`` takes each event on the event loop as it is read
///   and finishes it in a task only when it must suspend, for handlers that answer on the loop (the gateway's
///   handlers, the Autobahn peer): no task waits while the connection is idle.
/// - ``deliverEvents(to:)``: the same with an `async` callback in place of a consumer, for handlers that always
///   suspend (each event runs in the consumer's task).
///
/// ``deliveryFinished`` tells when a consumer is done with the last event. Whichever way is chosen, when the
/// reader falls behind the connection stops reading from the network until it catches up, and a close the peer
/// starts is answered only once the reader has taken the events before it (at most one second later).
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
    let handler: NIOLoopBound<WebSocketChannelHandler>
    private let traffic: WebSocketTraffic
    /// Made when ``events`` is first used (a connection served by a callback never needs one).
    private let sequence = NIOLockedValueBox<WebSocketChannelHandler.Producer?>(nil)
    private let bufferedEvents: Int
    private let receiver: NIOLockedValueBox<Receiver>
    let closed: EventLoopFuture<WebSocketCloseInfo>
    private let shared: NIOLockedValueBox<SharedReaderState>

    private static let nextID = NIOLockedValueBox<UInt64>(0)

    /// The state of ``receive()``'s private iterator.
    ///
    /// `@unchecked Sendable` because the iterator of an `NIOAsyncSequenceProducer` is not `Sendable`, yet
    /// ``receive()`` must keep it between calls that may come from different tasks. The lock hands it to one
    /// caller at a time (`busy` while it is out), so it is never used concurrently.
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
        self.traffic = handler.traffic
    }

    /// The bytes read from the network since the handshake: whole frames with their headers, control frames and
    /// compressed payloads as they arrived (compare with the payload sizes of the messages to see what
    /// compression saves).
    public var wireBytesReceived: Int { self.traffic.bytesReceived }

    /// The bytes written to the network since the handshake, as ``wireBytesReceived`` counts them.
    public var wireBytesSent: Int { self.traffic.bytesSent }

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
    /// ``events`` or ``receive()``.
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
    /// use together with ``events`` or ``receive()``.
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
}
