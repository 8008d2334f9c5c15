/// The id of a connection in the gateway: unique, unguessable for inbound connections (128 random bits), and
/// always matching `^[a-zA-Z0-9=-]+$` so it can sit in URLs and log lines unescaped.
public struct SocketID: Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The id as text.
    public let rawValue: String

    /// The longest id accepted.
    public static let maxLength = 128

    /// Validates an id chosen by a user (for example for an outbound socket); `nil` when it breaks the pattern.
    public init?(validating rawValue: String) {
        guard Self.isValid(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    /// An id literal (for tests and configuration); traps on an invalid one.
    public init(stringLiteral value: String) {
        precondition(Self.isValid(value), "invalid socket id '\(value)'")
        self.rawValue = value
    }

    /// A new random id: 32 hexadecimal digits.
    public static func random() -> SocketID {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        let hex = Self.hex(high) + Self.hex(low)
        return SocketID(unchecked: hex)
    }

    private init(unchecked: String) {
        self.rawValue = unchecked
    }

    /// Whether `text` is a valid id.
    public static func isValid(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= Self.maxLength else { return false }
        return text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "="), UInt8(ascii: "-"):
                return true
            default:
                return false
            }
        }
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard Self.isValid(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid socket id '\(text)'"))
        }
        self.rawValue = text
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.rawValue)
    }

    public var description: String { self.rawValue }
}

/// Whether a connection was accepted by the gateway or opened by it.
public enum SocketType: String, Sendable, Codable, Hashable, CaseIterable {
    /// A client connected to one of the gateway's routes.
    case inbound
    /// The gateway connected to another WebSocket service.
    case outbound
}
