import NIOHTTP1
import WebSocketEngine

/// An error of a gateway operation: a typed ``kind`` to switch on and a readable ``description``. New kinds can be
/// added without breaking users.
public struct GatewayError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, for code to switch on; its raw value is the machine-readable name the management API and
    /// the logs show.
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// No connection has the id.
        case noSuchSocket = "no_such_socket"
        /// The connection is closing or closed.
        case socketNotOpen = "socket_not_open"
        /// The text is not a valid socket id.
        case invalidSocketID = "invalid_socket_id"
        /// The message is larger than the connection's maximum message size.
        case messageTooLarge = "message_too_large"
        /// The connection's outbound queue is full.
        case slowConsumer = "slow_consumer"
        /// Writing to the connection failed for another reason.
        case sendFailed = "send_failed"
        /// Another connection already has the id.
        case socketIDInUse = "socket_id_in_use"
        /// An outbound socket's description is invalid.
        case invalidOutbound = "invalid_outbound"
        /// The gateway cannot open another outbound socket.
        case tooManyOutbound = "too_many_outbound"
        /// An outbound socket's first connection failed and its strategy does not retry.
        case connectFailed = "connect_failed"
        /// An outbound socket is reconnecting and its queue is full.
        case reconnectQueueFull = "reconnect_queue_full"
        /// An outbound socket gave up reconnecting.
        case reconnectGaveUp = "reconnect_gave_up"
        /// An outbound socket is not connected and queues nothing.
        case notConnected = "not_connected"
        /// A message does not fit the connection's codec.
        case invalidMessage = "invalid_message"
        /// An action is malformed (unknown type, missing or unknown field, invalid value).
        case badRequest = "bad_request"
        /// A group name is too long, or the connection is in as many groups as it may be.
        case groupLimit = "group_limit"
        /// What is sent on the socket belongs to one sender (a bridge): nobody else may send to it.
        case socketReserved = "socket_reserved"

        /// The HTTP status that answers an operation failing with this kind: the one mapping used by the
        /// management API and anything else that renders gateway errors over HTTP.
        public var httpStatus: HTTPResponseStatus {
            switch self {
            case .noSuchSocket: return .notFound
            case .invalidSocketID, .invalidOutbound, .badRequest: return .badRequest
            case .socketNotOpen, .invalidMessage, .groupLimit: return .unprocessableEntity
            case .messageTooLarge: return .payloadTooLarge
            case .socketIDInUse, .socketReserved: return .conflict
            case .slowConsumer, .tooManyOutbound, .reconnectQueueFull, .reconnectGaveUp, .notConnected: return .serviceUnavailable
            case .connectFailed: return .badGateway
            case .sendFailed: return .internalServerError
            }
        }
    }

    /// What went wrong.
    public let kind: Kind
    /// The sentence that explains it.
    public let description: String

    /// Creates an error of `kind` explained by `description`.
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    /// No connection has this id.
    public static func noSuchSocket(_ id: String) -> Self { Self(.noSuchSocket, "no such socket: \(id)") }
    /// The connection is closing or closed.
    public static func socketNotOpen(_ id: String) -> Self { Self(.socketNotOpen, "socket \(id) is not open") }
    /// The text is not a valid socket id.
    public static func invalidSocketID(_ id: String) -> Self {
        Self(.invalidSocketID, "invalid socket id '\(id)': expected 1 to 128 characters of [a-zA-Z0-9=-]")
    }
    /// The message is larger than the connection's maximum message size.
    public static func messageTooLarge(size: Int, limit: Int) -> Self {
        Self(.messageTooLarge, "message of \(size) bytes exceeds the limit of \(limit) bytes")
    }
    /// The connection's outbound queue is full.
    public static func slowConsumer(_ id: String) -> Self {
        Self(.slowConsumer, "socket \(id) is a slow consumer: its outbound queue is full")
    }
    /// Another connection already has this id.
    public static func socketIDInUse(_ id: String) -> Self { Self(.socketIDInUse, "socket id \(id) is already in use") }
    /// An outbound socket's description is invalid (bad URL, missing placeholder value...).
    public static func invalidOutbound(_ reason: String) -> Self { Self(.invalidOutbound, "invalid outbound socket: \(reason)") }
    /// The gateway cannot open another outbound socket (its outbound cap or its connection cap is reached).
    public static func tooManyOutbound(_ reason: String) -> Self {
        Self(.tooManyOutbound, "cannot open another outbound socket: \(reason)")
    }
    /// An outbound socket's first connection failed and its strategy does not retry.
    public static func connectFailed(_ url: String, reason: String) -> Self {
        Self(.connectFailed, "connecting to \(url) failed: \(reason)")
    }
    /// An outbound socket is reconnecting and its queue is full.
    public static func reconnectQueueFull(_ id: String, limit: Int) -> Self {
        Self(.reconnectQueueFull, "socket \(id) is reconnecting and its queue is full (\(limit) messages)")
    }
    /// An outbound socket gave up reconnecting; its queued messages are not sent.
    public static func reconnectGaveUp(_ id: String, attempts: Int) -> Self {
        Self(.reconnectGaveUp, "socket \(id) gave up reconnecting after \(attempts) attempts")
    }
    /// An outbound socket is not connected and queues nothing (queue size 0).
    public static func notConnected(_ id: String) -> Self {
        Self(.notConnected, "socket \(id) is not connected (reconnecting, and queueing is off)")
    }
    /// A send to a socket whose messages belong to `owner` (the bridge that pairs its replies with requests).
    public static func socketReserved(_ id: String, owner: String) -> Self {
        Self(.socketReserved, "socket \(id) is reserved for \(owner): its replies are matched to the requests sent through it, so other senders are refused (send through the bridged route instead)")
    }
    /// A subscription over a group limit: `reason` says which (the name's length or the connection's group count).
    public static func groupLimit(_ reason: String) -> Self { Self(.groupLimit, reason) }
    /// A message does not fit the connection's codec (for example invalid JSON on a `json` socket).
    public static func invalidMessage(_ id: String, reason: String) -> Self {
        Self(.invalidMessage, "message for socket \(id) does not fit its codec: \(reason)")
    }
    /// Writing to a connection failed for a reason other than the ones above.
    public static func sendFailed(_ id: String, reason: String) -> Self { Self(.sendFailed, "sending to \(id) failed: \(reason)") }
    /// An action is malformed; `reason` says which field and what is expected.
    public static func badRequest(_ reason: String) -> Self { Self(.badRequest, reason) }

    /// The gateway error for a failed write to connection `id`.
    static func sending(_ id: SocketID, _ error: any Error) -> GatewayError {
        switch (error as? WebSocketError)?.kind {
        case .connectionClosed?, .connectionClosing?: return .socketNotOpen(id.rawValue)
        case .outboundQueueFull?: return .slowConsumer(id.rawValue)
        default: return .sendFailed(id.rawValue, reason: "\(error)")
        }
    }
}
