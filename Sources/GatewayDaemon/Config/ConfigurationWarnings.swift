import NIOCore
import WebSocketEngine

extension DaemonConfiguration {
    /// Settings that are valid but work against each other, each naming the keys involved: `wsgate check` prints
    /// them and the daemon logs them at start.
    public var warnings: [String] {
        let handshake = self.limits.handshakeTimeout ?? WebSocketServerConfiguration().handshakeTimeout
        let handshakeKey = self.limits.handshakeTimeout == nil ? "limits.handshake_timeout (default 10s)" : "limits.handshake_timeout"
        var warnings: [String] = []
        for (index, route) in self.routes.enumerated() {
            guard let webhook = route.handler.webhook, route.handler.name == "webhook", webhook.events.contains(.open) else { continue }
            let longest = webhook.longestDelivery
            guard longest > handshake else { continue }
            let key = "routes[\(index)].webhook"
            warnings.append(
                "\(key).timeout × (1 + \(key).retries) with backoff (\(WebhookFailure.seconds(longest))) exceeds \(handshakeKey) "
                    + "(\(WebhookFailure.seconds(handshake))): the open event of \(route.path) gets only the attempts that fit "
                    + "in the handshake, and a backend that does not answer refuses clients with 504")
        }
        return warnings
    }
}
