import NIOCore

/// An HTTP CONNECT proxy for WebSocket clients.
///
/// The client opens a TCP connection to the proxy, asks it for a tunnel with `CONNECT host:port` and then runs TLS
/// (for `wss`, verified against the target host, never the proxy) and the opening handshake through the tunnel.
public struct WebSocketProxy: Sendable, Hashable {
    /// The proxy's host name or IP literal (IPv6 without brackets).
    public var host: String
    /// The proxy's port.
    public var port: Int
    /// The user name for `Proxy-Authorization: Basic`; no credentials are sent when `nil`.
    public var username: String?
    /// The password for `Proxy-Authorization: Basic` (empty when `nil` and a user name is set).
    public var password: String?
    /// Hosts reached directly: exact names, ".example.com" / "*.example.com" suffixes, IP literals, or "*" for all.
    ///
    /// Names compare case-insensitively; a suffix matches the subdomains of a name, not the name itself. IP literals
    /// compare by address, so "::1" and "[0:0::1]" are the same entry.
    public var noProxy: [String]

    /// Creates a proxy from its parts.
    public init(host: String, port: Int, username: String? = nil, password: String? = nil, noProxy: [String] = []) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.noProxy = noProxy
    }

    /// Parses "http://[user:pass@]host:port" (port defaults to 80); throws WebSocketClientError kind .invalidProxy.
    ///
    /// The user name and password are percent-decoded. A trailing "/" is accepted; any other path is not.
    public init(url: String, noProxy: [String] = []) throws(WebSocketClientError) {
        guard url.lowercased().hasPrefix("http://") else {
            throw .invalidProxy(url, reason: "only http:// proxies are supported")
        }
        var authority = url.dropFirst("http://".count)
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        guard !authority.contains(where: { "/?#".contains($0) }) else {
            throw .invalidProxy(url, reason: "a proxy URL has no path, query or fragment")
        }
        var username: String?
        var password: String?
        if let at = authority.lastIndex(of: "@") {
            let info = authority[..<at]
            let colon = info.firstIndex(of: ":") ?? info.endIndex
            username = PercentEncoding.decode(info[..<colon])
            password = colon == info.endIndex ? nil : PercentEncoding.decode(info[info.index(after: colon)...])
            authority = authority[authority.index(after: at)...]
        }
        let host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidProxy(url, reason: "unterminated IPv6 literal") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw .invalidProxy(url, reason: "unexpected text after the IPv6 literal")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw .invalidProxy(url, reason: "missing host") }
        var port = 80
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw .invalidProxy(url, reason: "invalid port '\(portText)'")
            }
            port = value
        }
        self.init(host: String(host), port: port, username: username, password: password, noProxy: noProxy)
    }

    /// Whether a connection to `host` goes through this proxy (false when noProxy matches).
    public func applies(to host: String) -> Bool {
        let name = Self.normalize(host)
        let address = Self.ipAddress(name)
        for rawEntry in self.noProxy {
            let entry = Self.normalize(rawEntry)
            if entry == "*" { return false }
            if let address {
                // An IP literal only matches the same address, never a name suffix.
                if Self.ipAddress(entry) == address { return false }
                continue
            }
            if entry.hasPrefix("*.") || entry.hasPrefix(".") {
                let suffix = entry.hasPrefix("*") ? String(entry.dropFirst()) : entry
                if suffix.count > 1, name.hasSuffix(suffix), name.count > suffix.count { return false }
            } else if !entry.isEmpty, entry == name {
                return false
            }
        }
        return true
    }

    /// The `CONNECT` request for a tunnel to `host:port`, with `Proxy-Authorization` when credentials are set.
    func connectRequest(host: String, port: Int) -> String {
        let authority = "\(host.contains(":") ? "[\(host)]" : host):\(port)"
        var request = "CONNECT \(authority) HTTP/1.1\r\nHost: \(authority)\r\n"
        if let username = self.username {
            let credentials = WebSocketAuthorization.basic(username: username, password: self.password ?? "")
            request += "Proxy-Authorization: \(credentials.headerValue)\r\n"
        }
        return request + "\r\n"
    }

    /// The proxy as "host:port", for messages.
    var address: String {
        "\(self.host.contains(":") ? "[\(self.host)]" : self.host):\(self.port)"
    }

    /// Lowercased, without brackets around an IPv6 literal and without a trailing dot.
    private static func normalize(_ host: String) -> String {
        var text = Substring(host.lowercased()).trimmingWhitespace()
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if text.hasSuffix("."), text.count > 1 { text = text.dropLast() }
        return String(text)
    }

    private static func ipAddress(_ text: String) -> SocketAddress? {
        try? SocketAddress(ipAddress: text, port: 0)
    }
}
