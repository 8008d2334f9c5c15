/// An error of an open WebSocket connection. New cases can be added without breaking users.
public struct WebSocketError: Error, Hashable, Sendable, CustomStringConvertible {
    enum Base: Hashable, Sendable {
        case protocolViolation(WebSocketCloseCode, String)
        case connectionClosed
        case connectionClosing
        case outboundQueueFull(limit: Int)
        case fragmentedSendInProgress
        case noFragmentedSendInProgress
        case controlFrameTooLarge(Int)
        case invalidCloseCode(UInt16)
        case closeReasonTooLong(Int)
        case pongTimeout
        case concurrentReceive
        case eventsTakenByCallback
    }

    let base: Base

    init(_ base: Base) { self.base = base }

    /// The peer broke RFC 6455/7692 (or a configured limit); the connection was failed with `code`.
    public static func protocolViolation(code: WebSocketCloseCode, reason: String) -> Self {
        Self(.protocolViolation(code, reason))
    }
    /// The connection is already closed.
    public static let connectionClosed = Self(.connectionClosed)
    /// A close frame was already sent; no more messages may follow it.
    public static let connectionClosing = Self(.connectionClosing)
    /// The outbound queue is full and the backpressure policy is to fail.
    public static func outboundQueueFull(limit: Int) -> Self { Self(.outboundQueueFull(limit: limit)) }
    /// A fragmented message is being streamed; other data messages must wait until it is finished.
    public static let fragmentedSendInProgress = Self(.fragmentedSendInProgress)
    /// A continuation fragment was sent with no fragmented message started.
    public static let noFragmentedSendInProgress = Self(.noFragmentedSendInProgress)
    /// Control frames carry at most 125 bytes.
    public static func controlFrameTooLarge(_ size: Int) -> Self { Self(.controlFrameTooLarge(size)) }
    /// The code cannot be sent in a close frame (RFC 6455 §7.4).
    public static func invalidCloseCode(_ code: UInt16) -> Self { Self(.invalidCloseCode(code)) }
    /// A close reason has at most 123 bytes of UTF-8.
    public static func closeReasonTooLong(_ size: Int) -> Self { Self(.closeReasonTooLong(size)) }
    /// The peer did not answer a keepalive ping in time.
    public static let pongTimeout = Self(.pongTimeout)
    /// `receive()` was called while another call was waiting.
    public static let concurrentReceive = Self(.concurrentReceive)
    /// The connection's events go to the callback of ``WebSocket/deliverEvents(to:)``; they cannot be taken
    /// another way.
    public static let eventsTakenByCallback = Self(.eventsTakenByCallback)

    /// The kinds of error, for `switch`ing in applications.
    public enum Kind: Sendable, Hashable {
        case protocolViolation, connectionClosed, connectionClosing, outboundQueueFull, fragmentedSendInProgress
        case noFragmentedSendInProgress, controlFrameTooLarge, invalidCloseCode, closeReasonTooLong, pongTimeout
        case concurrentReceive, eventsTakenByCallback
    }

    /// Which kind of error this is.
    public var kind: Kind {
        switch self.base {
        case .protocolViolation: return .protocolViolation
        case .connectionClosed: return .connectionClosed
        case .connectionClosing: return .connectionClosing
        case .outboundQueueFull: return .outboundQueueFull
        case .fragmentedSendInProgress: return .fragmentedSendInProgress
        case .noFragmentedSendInProgress: return .noFragmentedSendInProgress
        case .controlFrameTooLarge: return .controlFrameTooLarge
        case .invalidCloseCode: return .invalidCloseCode
        case .closeReasonTooLong: return .closeReasonTooLong
        case .pongTimeout: return .pongTimeout
        case .concurrentReceive: return .concurrentReceive
        case .eventsTakenByCallback: return .eventsTakenByCallback
        }
    }

    /// The close code this error corresponds to when it ends a connection.
    public var closeCode: WebSocketCloseCode {
        switch self.base {
        case .protocolViolation(let code, _): return code
        case .pongTimeout: return .goingAway
        default: return .internalServerError
        }
    }

    public var description: String {
        switch self.base {
        case .protocolViolation(let code, let reason): return "protocol violation (\(code.rawValue)): \(reason)"
        case .connectionClosed: return "the WebSocket connection is closed"
        case .connectionClosing: return "the WebSocket connection is closing; no more messages can be sent"
        case .outboundQueueFull(let limit): return "outbound queue is full (\(limit) bytes)"
        case .fragmentedSendInProgress: return "a fragmented message is being sent; finish it first"
        case .noFragmentedSendInProgress: return "no fragmented message is being sent"
        case .controlFrameTooLarge(let size): return "control frame payload of \(size) bytes exceeds 125 bytes"
        case .invalidCloseCode(let code): return "close code \(code) may not be sent (RFC 6455 §7.4)"
        case .closeReasonTooLong(let size): return "close reason of \(size) bytes exceeds 123 bytes"
        case .pongTimeout: return "no pong received within the keepalive timeout"
        case .concurrentReceive: return "receive() called while another receive() is pending"
        case .eventsTakenByCallback: return "the connection's events already go to a callback (deliverEvents(to:))"
        }
    }
}
