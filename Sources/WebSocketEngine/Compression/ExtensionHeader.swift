/// One extension offer or answer from a `Sec-WebSocket-Extensions` header (RFC 6455 §9.1).
struct WebSocketExtensionElement: Hashable, Sendable {
    /// The extension token, lowercased.
    var name: String
    /// Parameters in order; a parameter without a value has `nil`. Names are lowercased, quotes removed.
    var parameters: [(name: String, value: String?)]

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.name == rhs.name && lhs.parameters.elementsEqual(rhs.parameters) { $0.name == $1.name && $0.value == $1.value }
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.name)
        for parameter in self.parameters {
            hasher.combine(parameter.name)
            hasher.combine(parameter.value)
        }
    }

    /// Parses every header value given; elements that are syntactically broken are returned as `nil` so a server
    /// can decline just them while a client can refuse the answer.
    static func parse(headerValues: [String]) -> [WebSocketExtensionElement?] {
        var result: [WebSocketExtensionElement?] = []
        for value in headerValues {
            for element in Self.splitOutsideQuotes(value, separator: ",") {
                let trimmed = element.trimmingWhitespace()
                if trimmed.isEmpty { continue }
                result.append(Self.parseElement(trimmed))
            }
        }
        return result
    }

    private static func parseElement(_ text: Substring) -> WebSocketExtensionElement? {
        let parts = Self.splitOutsideQuotes(text, separator: ";")
        guard let first = parts.first else { return nil }
        let name = first.trimmingWhitespace()
        guard Self.isToken(name) else { return nil }
        var parameters: [(name: String, value: String?)] = []
        for part in parts.dropFirst() {
            let trimmed = part.trimmingWhitespace()
            if let equals = trimmed.firstIndex(of: "=") {
                let key = trimmed[..<equals].trimmingWhitespace()
                var value = trimmed[trimmed.index(after: equals)...].trimmingWhitespace()
                if value.hasPrefix("\"") {
                    guard value.count >= 2, value.hasSuffix("\"") else { return nil }
                    value = value.dropFirst().dropLast()
                }
                guard Self.isToken(key), Self.isToken(value) else { return nil }
                parameters.append((String(key).lowercased(), String(value)))
            } else {
                guard Self.isToken(trimmed) else { return nil }
                parameters.append((String(trimmed).lowercased(), nil))
            }
        }
        return WebSocketExtensionElement(name: String(name).lowercased(), parameters: parameters)
    }

    /// Renders the element for a header value.
    var headerValue: String {
        var text = self.name
        for parameter in self.parameters {
            text += "; \(parameter.name)"
            if let value = parameter.value { text += "=\(value)" }
        }
        return text
    }

    private static func splitOutsideQuotes(_ text: some StringProtocol, separator: Character) -> [Substring] {
        var parts: [Substring] = []
        let string = Substring(text)
        var start = string.startIndex
        var inQuotes = false
        var index = string.startIndex
        while index < string.endIndex {
            let character = string[index]
            if character == "\"" {
                inQuotes.toggle()
            } else if character == separator, !inQuotes {
                parts.append(string[start..<index])
                start = string.index(after: index)
            }
            index = string.index(after: index)
        }
        parts.append(string[start...])
        return parts
    }

    /// RFC 7230 token characters.
    private static func isToken(_ text: Substring) -> Bool {
        guard !text.isEmpty else { return false }
        return text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingWhitespace() -> Substring {
        let substring = Substring(self)
        guard let first = substring.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return substring[substring.endIndex...] }
        let last = substring.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return substring[first...last]
    }
}
