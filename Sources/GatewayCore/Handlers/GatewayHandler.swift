import NIOCore
import WebSocketEngine

/// Serves the connections of a route. Implement the callbacks you need (the others do nothing), or override
/// ``serve(_:events:)`` to consume the events as an `AsyncSequence`. Events of one connection come in order,
/// from one task; the handler may reply on its connection and call every ``Gateway`` operation.
public protocol GatewayHandler: Sendable {
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
}

extension GatewayHandler {
    public func serve(_ context: GatewayContext, events: GatewayEvents) async {
        for await event in events {
            switch event.kind {
            case .open: await self.onOpen(context)
            case .text(let text): await self.onText(context, text)
            case .binary(let data): await self.onBinary(context, data)
            case .ping(let payload): await self.onPing(context, payload)
            case .pong(let payload): await self.onPong(context, payload)
            case .idleTimeout: await self.onIdleTimeout(context)
            case .error(let reason): await self.onError(context, reason)
            case .close(let code, let reason): await self.onClose(context, code: code, reason: reason)
            }
        }
    }

    public func onOpen(_ context: GatewayContext) async {}
    public func onText(_ context: GatewayContext, _ text: String) async {}
    public func onBinary(_ context: GatewayContext, _ data: ByteBuffer) async {}
    public func onPing(_ context: GatewayContext, _ payload: ByteBuffer) async {}
    public func onPong(_ context: GatewayContext, _ payload: ByteBuffer) async {}
    public func onIdleTimeout(_ context: GatewayContext) async {}
    public func onError(_ context: GatewayContext, _ reason: String) async {}
    public func onClose(_ context: GatewayContext, code: UInt16, reason: String) async {}
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

/// Echoes every message back to its sender.
public struct EchoHandler: GatewayHandler {
    /// Creates the handler.
    public init() {}

    public func onText(_ context: GatewayContext, _ text: String) async {
        try? await context.send(.text(text))
    }

    public func onBinary(_ context: GatewayContext, _ data: ByteBuffer) async {
        try? await context.send(.binary(data))
    }
}

/// Fans every message out to the sender's groups (for a chat room: the route's `room:{room}` group).
public struct BroadcastHandler: GatewayHandler {
    /// Leave the sender out of its own broadcasts.
    public var excludeSender: Bool

    /// Creates the handler.
    public init(excludeSender: Bool = false) {
        self.excludeSender = excludeSender
    }

    public func onText(_ context: GatewayContext, _ text: String) async {
        await self.fanOut(.text(text), context)
    }

    public func onBinary(_ context: GatewayContext, _ data: ByteBuffer) async {
        await self.fanOut(.binary(data), context)
    }

    private func fanOut(_ message: WebSocketMessage, _ context: GatewayContext) async {
        let groups = Array(context.connection.groups)
        guard !groups.isEmpty else { return }
        _ = await context.gateway.broadcast(
            message, to: ConnectionFilter(groups: groups), excluding: self.excludeSender ? context.connection.id : nil)
    }
}
