import WebSocketEngine

/// Echoes every message back to its sender.
public struct EchoHandler: GatewayMessageHandler {
    /// Creates the handler.
    public init() {}

    /// Echoes at once when the message can leave without waiting (the common case); otherwise ``onMessage(_:_:)``
    /// waits for room.
    public func handleNow(_ event: GatewayEvent, _ context: GatewayContext) -> Bool {
        guard let message = event.message else { return false }
        do {
            return try context.connection.sendNow(message)
        } catch {
            // As in `onMessage`: a connection that cannot take the echo any more does not get it.
            return true
        }
    }

    public func onMessage(_ context: GatewayContext, _ message: WebSocketMessage) async {
        try? await context.send(message)
    }
}
