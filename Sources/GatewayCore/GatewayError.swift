import WebSocketEngine

/// An error of a gateway operation. New cases can be added without breaking users.
public struct GatewayError: Error, Hashable, Sendable, CustomStringConvertible {
    enum Base: Hashable, Sendable {
        case noSuchSocket(String)
        case socketNotOpen(String)
        case invalidSocketID(String)
        case messageTooLarge(size: Int, limit: Int)
        case slowConsumer(String)
        case send(String, String)
    }

    let base: Base

    init(_ base: Base) { self.base = base }

    /// No connection has this id.
    public static func noSuchSocket(_ id: String) -> Self { Self(.noSuchSocket(id)) }
    /// The connection is closing or closed.
    public static func socketNotOpen(_ id: String) -> Self { Self(.socketNotOpen(id)) }
    /// The text is not a valid socket id.
    public static func invalidSocketID(_ id: String) -> Self { Self(.invalidSocketID(id)) }
    /// The message is larger than the connection's maximum message size.
    public static func messageTooLarge(size: Int, limit: Int) -> Self { Self(.messageTooLarge(size: size, limit: limit)) }
    /// The connection's outbound queue is full.
    public static func slowConsumer(_ id: String) -> Self { Self(.slowConsumer(id)) }

    /// A short machine-readable kind: `no_such_socket`, `socket_not_open`, `invalid_socket_id`,
    /// `message_too_large`, `slow_consumer`, `send_failed`.
    public var kind: String {
        switch self.base {
        case .noSuchSocket: return "no_such_socket"
        case .socketNotOpen: return "socket_not_open"
        case .invalidSocketID: return "invalid_socket_id"
        case .messageTooLarge: return "message_too_large"
        case .slowConsumer: return "slow_consumer"
        case .send: return "send_failed"
        }
    }

    public var description: String {
        switch self.base {
        case .noSuchSocket(let id): return "no such socket: \(id)"
        case .socketNotOpen(let id): return "socket \(id) is not open"
        case .invalidSocketID(let id): return "invalid socket id '\(id)': expected 1 to 128 characters of [a-zA-Z0-9=-]"
        case .messageTooLarge(let size, let limit): return "message of \(size) bytes exceeds the limit of \(limit) bytes"
        case .slowConsumer(let id): return "socket \(id) is a slow consumer: its outbound queue is full"
        case .send(let id, let reason): return "sending to \(id) failed: \(reason)"
        }
    }

    static func sending(_ id: SocketID, _ error: any Error) -> GatewayError {
        switch (error as? WebSocketError)?.kind {
        case .connectionClosed?, .connectionClosing?: return .socketNotOpen(id.rawValue)
        case .outboundQueueFull?: return .slowConsumer(id.rawValue)
        default: return GatewayError(.send(id.rawValue, "\(error)"))
        }
    }
}
