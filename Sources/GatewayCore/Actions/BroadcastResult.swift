/// The outcome of a broadcast.
public struct BroadcastResult: Sendable, Hashable {
    /// How many connections took the message.
    public var delivered: Int
    /// One entry per connection that could not.
    public var failures: [BroadcastFailure]

    /// Creates a result.
    public init(delivered: Int, failures: [BroadcastFailure]) {
        self.delivered = delivered
        self.failures = failures
    }
}

/// A connection a broadcast could not reach, and why.
public struct BroadcastFailure: Sendable, Hashable, Codable {
    /// Why a connection did not take a broadcast; the raw value is the name in the API's answer and the `reason`
    /// dimension of `wsgate_broadcast_failures_total`.
    public enum Reason: String, Sendable, Hashable, Codable, CaseIterable {
        /// The connection closed (or began closing) before it could take the message.
        case closed
        /// The connection's outbound queue is full.
        case slowConsumer = "slow_consumer"
        /// The message is larger than the connection's maximum message size.
        case tooLarge = "too_large"
        /// The connection's codec refused the message (for example text that is not JSON on a `json` socket).
        case codec
        /// An outbound socket is reconnecting and its queue is full.
        case queueFull = "queue_full"
        /// An outbound socket is reconnecting and queues nothing.
        case notConnected = "not_connected"
        /// Writing failed for another reason.
        case sendFailed = "send_failed"
        /// The socket's messages belong to one sender (a bridge), so a broadcast does not reach it.
        case reserved

        /// The reason for a gateway error met while delivering.
        init(_ kind: GatewayError.Kind) {
            switch kind {
            case .slowConsumer: self = .slowConsumer
            case .messageTooLarge: self = .tooLarge
            case .invalidMessage: self = .codec
            case .reconnectQueueFull: self = .queueFull
            case .notConnected: self = .notConnected
            case .socketNotOpen, .noSuchSocket, .reconnectGaveUp: self = .closed
            case .socketReserved: self = .reserved
            default: self = .sendFailed
            }
        }
    }

    /// The connection's id.
    public var socketID: SocketID
    /// Inbound or outbound.
    public var socketType: SocketType
    /// The connection's URI.
    public var uri: String
    /// Why, for code.
    public var reason: Reason
    /// Why, for people: `closed meanwhile`, `slow consumer (outbound queue full)`...
    public var error: String

    /// Creates a failure record.
    public init(socketID: SocketID, socketType: SocketType, uri: String, reason: Reason, error: String) {
        self.socketID = socketID
        self.socketType = socketType
        self.uri = uri
        self.reason = reason
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case socketID = "socket_id"
        case socketType = "socket_type"
        case uri, reason, error
    }
}
