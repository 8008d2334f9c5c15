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
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
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
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw .invalidURL(string, reason: "invalid port '\(portText)'")
            }
            self.port = port
        } else {
            self.port = self.isSecure ? 443 : 80
        }
    }

    /// The `Host` header value: the port is left out when it is the scheme's default.
    public var hostHeader: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        let isDefault = self.port == (self.isSecure ? 443 : 80)
        return isDefault ? host : "\(host):\(self.port)"
    }

    public var description: String {
        "\(self.isSecure ? "wss" : "ws")://\(self.hostHeader)\(self.requestTarget)"
    }
}
