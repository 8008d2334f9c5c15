import WebSocketEngine

/// Fans every message out to the sender's groups (for a chat room: the route's `room:{room}` group).
public struct BroadcastHandler: GatewayMessageHandler {
    /// Leave the sender out of its own broadcasts.
    public var excludeSender: Bool

    /// Creates the handler.
    public init(excludeSender: Bool = false) {
        self.excludeSender = excludeSender
    }

    public func onMessage(_ context: GatewayContext, _ message: WebSocketMessage) async {
        let groups = Array(context.connection.groups)
        guard !groups.isEmpty else { return }
        _ = await context.gateway.broadcast(
            message, to: ConnectionFilter(groups: groups), excluding: self.excludeSender ? context.connection.id : nil)
    }
}
