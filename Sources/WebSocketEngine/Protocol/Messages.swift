import NIOCore

/// Which end of a WebSocket connection an endpoint plays; it decides the masking rules (RFC 6455 §5.1) and who
/// closes the TCP connection first (§7.1.1).
public enum WebSocketRole: Sendable, Hashable {
    /// The endpoint that accepted the upgrade; it never masks and closes TCP first.
    case server
    /// The endpoint that sent the upgrade; it masks every frame and waits for the server to close TCP.
    case client
}

/// A complete WebSocket data message.
public enum WebSocketMessage: Sendable, Hashable {
    /// A text message (always valid UTF-8).
    case text(String)
    /// A binary message.
    case binary(ByteBuffer)
}

/// Why and how a connection ended, as seen by the application.
public struct WebSocketCloseInfo: Sendable, Hashable, CustomStringConvertible {
    /// The code of the close: the one this endpoint sent when it started the close or failed the connection
    /// (whether the peer answered or not), else the one the peer sent; 1005 when the peer's close frame came
    /// without a code and 1006 when the connection ended without any close frame.
    public var code: WebSocketCloseCode
    /// The reason that came with the code (may be empty).
    public var reason: String
    /// True when this endpoint started the close (or failed the connection), false when the peer did.
    public var initiatedLocally: Bool

    /// Creates a close description.
    public init(code: WebSocketCloseCode, reason: String = "", initiatedLocally: Bool) {
        self.code = code
        self.reason = reason
        self.initiatedLocally = initiatedLocally
    }

    public var description: String {
        "\(self.code.rawValue)\(self.reason.isEmpty ? "" : " \(self.reason)") (\(self.initiatedLocally ? "local" : "remote"))"
    }
}

/// Everything a connection reports to the application, in the order it happened.
public enum WebSocketEvent: Sendable, Hashable {
    /// A whole text message.
    case text(String)
    /// A whole binary message.
    case binary(ByteBuffer)
    /// A ping arrived (it has already been answered with a pong carrying the same payload).
    case ping(ByteBuffer)
    /// A pong arrived (solicited or not).
    case pong(ByteBuffer)
    /// No data moved in either direction for the configured idle timeout.
    case idleTimeout
    /// The connection failed; a `close` event follows.
    case error(WebSocketError)
    /// The connection is closed; this is always the last event.
    case close(WebSocketCloseInfo)

    /// The message of a `text` or `binary` event.
    public var message: WebSocketMessage? {
        switch self {
        case .text(let text): return .text(text)
        case .binary(let data): return .binary(data)
        default: return nil
        }
    }
}
