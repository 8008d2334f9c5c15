import Logging
import NIOCore
import WebSocketEngine

/// A live feed: every message that arrives on the connection it serves (typically an outbound socket to an upstream
/// service) is broadcast to the inbound connections of a group.
public struct ForwardHandler: GatewayMessageHandler {
    /// The group the messages fan out to.
    public var group: String

    /// Creates the handler.
    public init(group: String) {
        self.group = group
    }

    public func onMessage(_ context: GatewayContext, _ message: WebSocketMessage) async {
        let result = await context.gateway.broadcast(
            message, to: ConnectionFilter(groups: [self.group], socketType: .inbound), excluding: context.connection.id)
        if !result.failures.isEmpty {
            var metadata = context.connection.logMetadata
            metadata["group"] = "\(self.group)"
            metadata["failures"] = "\(result.failures.count)"
            context.gateway.configuration.logger.debug("forward: some members did not take the message", metadata: metadata)
        }
    }
}
