import GatewayCore
import NIOCore

/// A configuration value that is not acceptable: which key, what it was, and what was expected.
public typealias ConfigError = GatewayConfigurationError

/// Renders a coding path as `routes[2].limits.max_message_size`.
func keyPath(_ path: [any CodingKey]) -> String {
    var text = ""
    for key in path {
        if let index = key.intValue {
            text += "[\(index)]"
        } else {
            text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
    }
    return text
}

/// Parses durations such as `250ms`, `30s`, `5m`, `2h` (a bare number is seconds).
enum DurationText {
    static let expected = "a duration such as 250ms, 30s, 5m or 1h"

    static func parse(_ text: String) -> TimeAmount? {
        let trimmed = text.trimmingCharacters(in: " ")
        let units: [(String, Int64)] = [("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // "5m" must not be read as "5" + "m" of "ms": ms is tried first.
            guard let value = Double(number), value >= 0 else { return nil }
            return Self.nanoseconds(value * Double(scale))
        }
        guard let seconds = Double(trimmed), seconds >= 0 else { return nil }
        return Self.nanoseconds(seconds * 1_000_000_000)
    }

    /// A duration of `nanoseconds`, or `nil` when it does not fit a `TimeAmount` (about 292 years): converting a
    /// larger `Double` to `Int64` would stop the process.
    private static func nanoseconds(_ nanoseconds: Double) -> TimeAmount? {
        Int64(exactly: nanoseconds.rounded(.towardZero)).map { .nanoseconds($0) }
    }
}

/// Parses sizes such as `512`, `64KiB`, `1MiB`, `2GiB`, `10KB` (KB = 1000).
enum SizeText {
    static let expected = "a size such as 1024, 64KiB or 1MiB"

    static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: " ")
        let units: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1),
        ]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: " ")), value >= 0 else { return nil }
            // A size that does not fit an `Int` (or `inf`) is refused rather than converted, which would trap.
            return Int(exactly: (value * Double(scale)).rounded(.towardZero))
        }
        return Int(trimmed).flatMap { $0 >= 0 ? $0 : nil }
    }
}

/// `host:port` (IPv6 in brackets).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// The host or IP literal.
    public var host: String
    /// The port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    static let expected = "host:port such as 127.0.0.1:8080 or [::1]:8080"

    public static func parse(_ text: String) -> ListenAddress? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return ListenAddress(host: String(host), port: port)
    }

    /// Whether the address is on loopback only.
    public var isLoopback: Bool {
        self.host == "localhost" || self.host.hasPrefix("127.") || self.host == "::1"
    }

    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        String(self.drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        String(self).trimmingCharacters(in: set)
    }
}
