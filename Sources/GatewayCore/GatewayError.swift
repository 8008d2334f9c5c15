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
        case socketIDInUse(String)
        case invalidOutbound(String)
        case tooManyOutbound(String)
        case connectFailed(String, String)
        case reconnectQueueFull(String, Int)
        case reconnectGaveUp(String, Int)
        case notConnected(String)
        case invalidMessage(String, String)
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

    /// Another connection already has this id.
    public static func socketIDInUse(_ id: String) -> Self { Self(.socketIDInUse(id)) }
    /// An outbound socket's description is invalid (bad URL, missing placeholder value...).
    public static func invalidOutbound(_ reason: String) -> Self { Self(.invalidOutbound(reason)) }
    /// The gateway cannot open another outbound socket (its outbound cap or its connection cap is reached).
    public static func tooManyOutbound(_ reason: String) -> Self { Self(.tooManyOutbound(reason)) }
    /// An outbound socket's first connection failed and its strategy does not retry.
    public static func connectFailed(_ url: String, reason: String) -> Self { Self(.connectFailed(url, reason)) }
    /// An outbound socket is reconnecting and its queue is full.
    public static func reconnectQueueFull(_ id: String, limit: Int) -> Self { Self(.reconnectQueueFull(id, limit)) }
    /// An outbound socket gave up reconnecting; its queued messages are not sent.
    public static func reconnectGaveUp(_ id: String, attempts: Int) -> Self { Self(.reconnectGaveUp(id, attempts)) }
    /// An outbound socket is not connected and queues nothing (queue size 0).
    public static func notConnected(_ id: String) -> Self { Self(.notConnected(id)) }
    /// A message does not fit the connection's codec (for example invalid JSON on a `json` socket).
    public static func invalidMessage(_ id: String, reason: String) -> Self { Self(.invalidMessage(id, reason)) }

    /// A short machine-readable kind: `no_such_socket`, `socket_not_open`, `invalid_socket_id`,
    /// `message_too_large`, `slow_consumer`, `send_failed`, `socket_id_in_use`, `invalid_outbound`,
    /// `too_many_outbound`, `connect_failed`, `reconnect_queue_full`, `reconnect_gave_up`, `not_connected`,
    /// `invalid_message`.
    public var kind: String {
        switch self.base {
        case .noSuchSocket: return "no_such_socket"
        case .socketNotOpen: return "socket_not_open"
        case .invalidSocketID: return "invalid_socket_id"
        case .messageTooLarge: return "message_too_large"
        case .slowConsumer: return "slow_consumer"
        case .send: return "send_failed"
        case .socketIDInUse: return "socket_id_in_use"
        case .invalidOutbound: return "invalid_outbound"
        case .tooManyOutbound: return "too_many_outbound"
        case .connectFailed: return "connect_failed"
        case .reconnectQueueFull: return "reconnect_queue_full"
        case .reconnectGaveUp: return "reconnect_gave_up"
        case .notConnected: return "not_connected"
        case .invalidMessage: return "invalid_message"
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
        case .socketIDInUse(let id): return "socket id \(id) is already in use"
        case .invalidOutbound(let reason): return "invalid outbound socket: \(reason)"
        case .tooManyOutbound(let reason): return "cannot open another outbound socket: \(reason)"
        case .connectFailed(let url, let reason): return "connecting to \(url) failed: \(reason)"
        case .reconnectQueueFull(let id, let limit): return "socket \(id) is reconnecting and its queue is full (\(limit) messages)"
        case .reconnectGaveUp(let id, let attempts): return "socket \(id) gave up reconnecting after \(attempts) attempts"
        case .notConnected(let id): return "socket \(id) is not connected (reconnecting, and queueing is off)"
        case .invalidMessage(let id, let reason): return "message for socket \(id) does not fit its codec: \(reason)"
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
