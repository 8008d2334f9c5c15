/// A parsed `ws://` or `wss://` URL (RFC 6455 §3).
public struct WebSocketURL: Sendable, Hashable, CustomStringConvertible {
    /// Whether the connection uses TLS (`wss`).
    public var isSecure: Bool
    /// The host name or IP literal (IPv6 without brackets).
    public var host: String
    /// The port (80 or 443 when the URL gives none).
    public var port: Int
    /// The path and query sent in the request line ("/" when empty).
    public var requestTarget: String
    /// The percent-decoded user name and password of `ws://user:password@host/`, which the client sends as Basic
    /// authorization; `nil` when the URL has none.
    public var userinfo: (user: String, password: String)? {
        get { self.credentials.map { ($0.user, $0.password) } }
        set { self.credentials = newValue.map { Credentials(user: $0.user, password: $0.password) } }
    }

    /// Stored as a struct so that the URL stays `Hashable`.
    private struct Credentials: Sendable, Hashable {
        var user: String
        var password: String
    }

    private var credentials: Credentials?

    /// Parses a URL; fails on other schemes, a missing host, a bad port or a fragment (forbidden by RFC 6455).
    public init(_ string: String) throws(WebSocketClientError) {
        let lower = string.lowercased()
        let rest: Substring
        if lower.hasPrefix("ws://") {
            self.isSecure = false
            rest = string.dropFirst(5)
        } else if lower.hasPrefix("wss://") {
            self.isSecure = true
            rest = string.dropFirst(6)
        } else {
            throw .invalidURL(string, reason: "scheme must be ws or wss")
        }
        guard !rest.contains("#") else { throw .invalidURL(string, reason: "fragments are not allowed") }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.hasPrefix("?") { target = "/" + target }
        self.requestTarget = target.isEmpty ? "/" : target
        if let at = authority.lastIndex(of: "@") {
            let info = authority[..<at]
            let colon = info.firstIndex(of: ":") ?? info.endIndex
            self.credentials = Credentials(
                user: PercentEncoding.decode(info[..<colon]),
                password: colon == info.endIndex ? "" : PercentEncoding.decode(info[info.index(after: colon)...]))
            authority = authority[authority.index(after: at)...]
        }
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL(string, reason: "unterminated IPv6 literal") }
            self.host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw .invalidURL(string, reason: "unexpected text after the IPv6 literal")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            self.host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            self.host = String(authority)
        }
        guard !self.host.isEmpty else { throw .invalidURL(string, reason: "missing host") }
        guard Self.isValidHost(self.host, literal: authority.hasPrefix("[")) else {
            throw .invalidURL(string, reason: "invalid host '\(self.host)'")
        }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw .invalidURL(string, reason: "invalid port '\(portText)'")
            }
            self.port = port
        } else {
            self.port = self.isSecure ? 443 : 80
        }
    }

    /// Whether `host` can be a URL's host: an IPv6 literal (`literal`, written in brackets) of hex digits, colons
    /// and dots (and a zone after `%`); otherwise a name or IPv4 address without brackets, colons, whitespace or
    /// characters that delimit URLs. Anything else would make a `Host` header and a ``description`` that do not
    /// read back as this URL (a redirect to `ws://a[::2]:80/` would be sent `Host: [a[::2]]`).
    private static func isValidHost(_ host: String, literal: Bool) -> Bool {
        if literal {
            return host.contains(":") && host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ":.%-_~".contains($0)) }
        }
        return !host.contains { character in
            character.isWhitespace || "[]:\"<>\\^`{|}".contains(character)
                || character.unicodeScalars.contains { $0.properties.generalCategory == .control }
        }
    }

    /// A URL from its parts (for redirects).
    init(isSecure: Bool, host: String, port: Int, requestTarget: String) {
        self.isSecure = isSecure
        self.host = host
        self.port = port
        self.requestTarget = requestTarget
    }

    /// The `Host` header value: the port is left out when it is the scheme's default.
    public var hostHeader: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        let isDefault = self.port == (self.isSecure ? 443 : 80)
        return isDefault ? host : "\(host):\(self.port)"
    }

    /// The URL without user information (never shown, since it may hold a password).
    public var description: String {
        "\(self.isSecure ? "wss" : "ws")://\(self.hostHeader)\(self.requestTarget)"
    }
}
