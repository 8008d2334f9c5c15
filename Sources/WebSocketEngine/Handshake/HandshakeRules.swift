import Crypto
import FoundationEssentials
import NIOHTTP1

/// The header rules of the opening handshake (RFC 6455 §4) that both ends apply.
enum HandshakeRules {
    private static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
    static func acceptValue(forKey key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Array((key + Self.guid).utf8))
        return Data(digest).base64EncodedString()
    }

    /// A fresh random `Sec-WebSocket-Key`: 16 random bytes in base64.
    static func makeKey() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
    }

    /// Whether `key` is base64 of exactly 16 bytes.
    static func isValidKey(_ key: String) -> Bool {
        guard key.utf8.count == 24, let data = Data(base64Encoded: key) else { return false }
        return data.count == 16
    }

    /// The comma-separated tokens of every value of header `name`, trimmed.
    static func tokens(_ headers: HTTPHeaders, _ name: String) -> [Substring] {
        headers[name].flatMap { $0.split(separator: ",").map { $0.trimmingWhitespace() } }.filter { !$0.isEmpty }
    }

    /// Whether header `name` lists `token`, compared case-insensitively.
    static func hasToken(_ headers: HTTPHeaders, _ name: String, _ token: String) -> Bool {
        self.tokens(headers, name).contains { $0.lowercased() == token }
    }
}
