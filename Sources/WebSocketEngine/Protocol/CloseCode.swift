/// A WebSocket close status code (RFC 6455 §7.4) with the rules for which codes may appear on the wire.
public struct WebSocketCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The numeric code.
    public var rawValue: UInt16

    /// Creates a close code from its numeric value (any value; see ``isValidOnWire``).
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Creates a close code from its numeric value.
    public init(_ code: UInt16) { self.rawValue = code }

    /// 1000: the purpose of the connection has been fulfilled.
    public static let normalClosure = Self(1000)
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    public static let goingAway = Self(1001)
    /// 1002: the peer broke the protocol.
    public static let protocolError = Self(1002)
    /// 1003: the endpoint cannot accept this type of data.
    public static let unsupportedData = Self(1003)
    /// 1005: no status code was present in the close frame (never sent on the wire).
    public static let noStatusReceived = Self(1005)
    /// 1006: the connection closed without a close frame (never sent on the wire).
    public static let abnormalClosure = Self(1006)
    /// 1007: a text message was not valid UTF-8 (or data was inconsistent with its type).
    public static let invalidFramePayloadData = Self(1007)
    /// 1008: the message violates the endpoint's policy.
    public static let policyViolation = Self(1008)
    /// 1009: a frame or message is too big to process.
    public static let messageTooBig = Self(1009)
    /// 1010: the client expected an extension the server did not negotiate.
    public static let mandatoryExtension = Self(1010)
    /// 1011: the server met an unexpected condition.
    public static let internalServerError = Self(1011)
    /// 1012: the service is restarting.
    public static let serviceRestart = Self(1012)
    /// 1013: try again later.
    public static let tryAgainLater = Self(1013)
    /// 1014: the gateway got an invalid response from an upstream server.
    public static let badGateway = Self(1014)

    /// Whether this code may be sent in, or accepted from, a close frame.
    ///
    /// 1000–1003 and 1007–1014 are defined by RFC 6455 and the IANA registry; 3000–3999 are registered for
    /// libraries and frameworks and 4000–4999 are private. Everything else, including 1004–1006 and 1015, which
    /// are reserved or only meaningful locally, is a protocol error when received.
    public var isValidOnWire: Bool {
        switch self.rawValue {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    public var description: String { String(self.rawValue) }
}
