import FoundationEssentials
import NIOCore
import WebSocketEngine

/// One thing that happened on a connection, with the connection it happened on.
public struct GatewayEvent: Sendable {
    /// What happened.
    public enum Kind: Sendable, Hashable {
        /// The connection opened (always the first event).
        case open
        /// A text message arrived.
        case text(String)
        /// A binary message arrived.
        case binary(ByteBuffer)
        /// A ping arrived (already answered).
        case ping(ByteBuffer)
        /// A pong arrived.
        case pong(ByteBuffer)
        /// No data moved for the idle timeout.
        case idleTimeout
        /// Something went wrong that the handler should know (protocol error, message dropped by the rate limit).
        case error(String)
        /// The connection closed (always the last event).
        case close(code: UInt16, reason: String)
        /// Outbound sockets: connect attempt number `attempt` starts (1 is the first connection).
        case connecting(attempt: Int)
        /// Outbound sockets: connect attempt number `attempt` failed.
        case connectFailed(attempt: Int, reason: String)
        /// Outbound sockets: the connection was lost and a reconnection follows (by the socket's strategy).
        case disconnected(code: UInt16, reason: String)
        /// Outbound sockets: reconnected at attempt number `attempt`; queued messages have been sent.
        case reconnected(attempt: Int)
        /// Outbound sockets: the strategy gave up after `attempts` attempts; `close` follows.
        case gaveUp(attempts: Int, reason: String)
    }

    /// What happened.
    public var kind: Kind
    /// The connection.
    public var connection: GatewayConnection
    /// When, in milliseconds since the epoch.
    public var timestamp: Int64

    /// The message of a `text` or `binary` event.
    public var message: WebSocketMessage? {
        switch self.kind {
        case .text(let text): return .text(text)
        case .binary(let data): return .binary(data)
        default: return nil
        }
    }

    /// The event as a record for JSON (webhooks, logs): the info record plus `type` (`open`, `data`, `close`,
    /// or `ping`, `pong`, `idle`, `error`), `message`, `message_type` (`data-text`/`data-binary`, binary in
    /// base64), `timestamp`, and `close_code`/`close_reason` for a close. Outbound sockets add `connecting`,
    /// `connect_failed`, `disconnected`, `reconnected` and `gave_up`, with `attempt` (and the reason in `message`).
    public var record: GatewayEventRecord {
        var record = GatewayEventRecord(info: self.connection.info(), type: "", timestamp: self.timestamp)
        switch self.kind {
        case .open: record.type = "open"
        case .text(let text):
            record.type = "data"
            record.message = text
            record.messageType = "data-text"
        case .binary(let data):
            record.type = "data"
            record.message = Data(data.readableBytesView).base64EncodedString()
            record.messageType = "data-binary"
        case .ping: record.type = "ping"
        case .pong: record.type = "pong"
        case .idleTimeout: record.type = "idle"
        case .error(let reason):
            record.type = "error"
            record.message = reason
        case .close(let code, let reason):
            record.type = "close"
            record.closeCode = code
            record.closeReason = reason
        case .connecting(let attempt):
            record.type = "connecting"
            record.attempt = attempt
        case .connectFailed(let attempt, let reason):
            record.type = "connect_failed"
            record.attempt = attempt
            record.message = reason
        case .disconnected(let code, let reason):
            record.type = "disconnected"
            record.closeCode = code
            record.closeReason = reason
        case .reconnected(let attempt):
            record.type = "reconnected"
            record.attempt = attempt
        case .gaveUp(let attempts, let reason):
            record.type = "gave_up"
            record.attempt = attempts
            record.message = reason
        }
        return record
    }
}

/// The JSON form of a ``GatewayEvent``: the connection's info fields and the event's own, in one object.
public struct GatewayEventRecord: Sendable, Hashable, Encodable {
    /// The connection's info at the time of the event.
    public var info: ConnectionInfo
    /// `open`, `data`, `close` (or `ping`, `pong`, `idle`, `error`).
    public var type: String
    /// The message (text, or base64 for binary) of a data event, the reason of an error event.
    public var message: String?
    /// `data-text` or `data-binary` for a data event.
    public var messageType: String?
    /// Milliseconds since the epoch.
    public var timestamp: Int64
    /// The close code of a close event.
    public var closeCode: UInt16?
    /// The close reason of a close event.
    public var closeReason: String?
    /// The attempt number of an outbound socket's connection event.
    public var attempt: Int?

    /// Creates a record.
    public init(info: ConnectionInfo, type: String, message: String? = nil, messageType: String? = nil, timestamp: Int64, closeCode: UInt16? = nil, closeReason: String? = nil) {
        self.info = info
        self.type = type
        self.message = message
        self.messageType = messageType
        self.timestamp = timestamp
        self.closeCode = closeCode
        self.closeReason = closeReason
    }

    enum CodingKeys: String, CodingKey {
        case type, message, timestamp
        case messageType = "message_type"
        case closeCode = "close_code"
        case closeReason = "close_reason"
        case attempt
    }

    public func encode(to encoder: any Encoder) throws {
        try self.info.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.type, forKey: .type)
        try container.encodeIfPresent(self.message, forKey: .message)
        try container.encodeIfPresent(self.messageType, forKey: .messageType)
        try container.encode(self.timestamp, forKey: .timestamp)
        try container.encodeIfPresent(self.closeCode, forKey: .closeCode)
        try container.encodeIfPresent(self.closeReason, forKey: .closeReason)
        try container.encodeIfPresent(self.attempt, forKey: .attempt)
    }
}
