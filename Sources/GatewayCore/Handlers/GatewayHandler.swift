import NIOCore
import WebSocketEngine

/// Serves the connections of a route. Implement the callbacks you need (the others do nothing), or override
/// ``serve(_:events:)`` to consume the events as an `AsyncSequence`. Events of one connection come in order, one
/// callback at a time; the handler may reply on its connection and call every ``Gateway`` operation.
///
/// With the default ``serve(_:events:)``, an inbound connection's events go first to ``handleNow(_:_:)``, on the
/// connection's event loop (as they are read, when the handler is between events); the callbacks of those it declines run in a task on that loop that
/// ends after one to two seconds without an event: an idle connection holds no task, a busy one starts none per
/// message. Outbound sockets, and handlers that override ``serve(_:events:)``, keep one task for the connection's
/// life and get every event through the callbacks.
public protocol GatewayHandler: Sendable {
    /// Handles `event` at once, without suspending, on the connection's event loop, and returns `true`; or returns
    /// `false`, having done nothing, to have its callback called instead (the default, for every event).
    ///
    /// A handler that can answer from memory (with ``GatewayConnection/sendNow(_:)``) saves a task switch per
    /// message. It must not block: anything that waits belongs in the callbacks.
    func handleNow(_ event: GatewayEvent, _ context: GatewayContext) -> Bool
    /// Serves one connection from open to close; by default calls the callbacks for each event.
    func serve(_ context: GatewayContext, events: GatewayEvents) async
    /// The connection opened.
    func onOpen(_ context: GatewayContext) async
    /// A text message arrived.
    func onText(_ context: GatewayContext, _ text: String) async
    /// A binary message arrived.
    func onBinary(_ context: GatewayContext, _ data: ByteBuffer) async
    /// A ping arrived (already answered).
    func onPing(_ context: GatewayContext, _ payload: ByteBuffer) async
    /// A pong arrived.
    func onPong(_ context: GatewayContext, _ payload: ByteBuffer) async
    /// The connection was idle for its idle timeout.
    func onIdleTimeout(_ context: GatewayContext) async
    /// Something went wrong (the connection may stay open, e.g. after a rate-limited message was dropped).
    func onError(_ context: GatewayContext, _ reason: String) async
    /// The connection closed.
    func onClose(_ context: GatewayContext, code: UInt16, reason: String) async
    /// An outbound socket starts connect attempt `attempt`.
    func onConnecting(_ context: GatewayContext, attempt: Int) async
    /// An outbound socket's connect attempt failed.
    func onConnectFailed(_ context: GatewayContext, attempt: Int, reason: String) async
    /// An outbound socket lost its connection; it will reconnect.
    func onDisconnected(_ context: GatewayContext, code: UInt16, reason: String) async
    /// An outbound socket reconnected.
    func onReconnected(_ context: GatewayContext, attempt: Int) async
    /// An outbound socket gave up reconnecting.
    func onGaveUp(_ context: GatewayContext, attempts: Int, reason: String) async
    /// A handler that must be the only sender on its outbound socket names itself here (a bridge, whose replies are
    /// matched to the requests it sent): actions that send to the socket (the management API, webhook answers,
    /// broadcasts) are then refused with `socket_reserved`. `nil` (the default) lets anyone send.
    var exclusiveSender: String? { get }
}

extension GatewayHandler {
    public func serve(_ context: GatewayContext, events: GatewayEvents) async {
        if await events.deliverToCallbacks(of: self, context) { return }
        for await event in events {
            await self.dispatch(event, context)
        }
    }

    /// Calls the callback for one event. A function of its own so that the loop above, whose frame lives as
    /// long as the connection, keeps only the iterator: the callbacks' locals are allocated only while they run.
    @inline(never)
    func dispatch(_ event: GatewayEvent, _ context: GatewayContext) async {
        switch event.kind {
        case .open: await self.onOpen(context)
        case .text(let text): await self.onText(context, text)
        case .binary(let data): await self.onBinary(context, data)
        case .ping(let payload): await self.onPing(context, payload)
        case .pong(let payload): await self.onPong(context, payload)
        case .idleTimeout: await self.onIdleTimeout(context)
        case .error(let reason): await self.onError(context, reason)
        case .close(let code, let reason): await self.onClose(context, code: code, reason: reason)
        case .connecting(let attempt): await self.onConnecting(context, attempt: attempt)
        case .connectFailed(let attempt, let reason): await self.onConnectFailed(context, attempt: attempt, reason: reason)
        case .disconnected(let code, let reason): await self.onDisconnected(context, code: code, reason: reason)
        case .reconnected(let attempt): await self.onReconnected(context, attempt: attempt)
        case .gaveUp(let attempts, let reason): await self.onGaveUp(context, attempts: attempts, reason: reason)
        }
    }

    public func handleNow(_ event: GatewayEvent, _ context: GatewayContext) -> Bool { false }
    public func onOpen(_ context: GatewayContext) async {}
    public func onText(_ context: GatewayContext, _ text: String) async {}
    public func onBinary(_ context: GatewayContext, _ data: ByteBuffer) async {}
    public func onPing(_ context: GatewayContext, _ payload: ByteBuffer) async {}
    public func onPong(_ context: GatewayContext, _ payload: ByteBuffer) async {}
    public func onIdleTimeout(_ context: GatewayContext) async {}
    public func onError(_ context: GatewayContext, _ reason: String) async {}
    public func onClose(_ context: GatewayContext, code: UInt16, reason: String) async {}
    public func onConnecting(_ context: GatewayContext, attempt: Int) async {}
    public func onConnectFailed(_ context: GatewayContext, attempt: Int, reason: String) async {}
    public func onDisconnected(_ context: GatewayContext, code: UInt16, reason: String) async {}
    public func onReconnected(_ context: GatewayContext, attempt: Int) async {}
    public func onGaveUp(_ context: GatewayContext, attempts: Int, reason: String) async {}
    public var exclusiveSender: String? { nil }
}

/// What a handler works with: its connection and the gateway.
public struct GatewayContext: Sendable {
    /// The connection being served.
    public let connection: GatewayConnection
    /// The gateway, for every operation (send to others, broadcast, groups...).
    public let gateway: Gateway

    /// Replies on this connection.
    public func send(_ message: WebSocketMessage) async throws(GatewayError) {
        try await self.connection.send(message)
    }
}

/// A handler that treats text and binary messages alike: implement ``onMessage(_:_:)``.
public protocol GatewayMessageHandler: GatewayHandler {
    /// A text or binary message arrived.
    func onMessage(_ context: GatewayContext, _ message: WebSocketMessage) async
}

extension GatewayMessageHandler {
    public func onText(_ context: GatewayContext, _ text: String) async {
        await self.onMessage(context, .text(text))
    }

    public func onBinary(_ context: GatewayContext, _ data: ByteBuffer) async {
        await self.onMessage(context, .binary(data))
    }
}
