import NIOHTTP1

/// Following redirects of the opening handshake: which answers are redirects, where their `Location` leads
/// (RFC 3986 §5.2 reference resolution) and which cookies they set.
enum WebSocketRedirect {
    /// The statuses that are followed.
    static let statuses: Set<UInt> = [301, 302, 303, 307, 308]

    /// The `Location` of a refusal that is a redirect, or `nil` for any other error.
    static func location(of error: any Error) -> (location: String, headers: HTTPHeaders)? {
        guard let error = error as? WebSocketClientError, case .unexpectedStatus(let status, let headers, _) = error.base,
            Self.statuses.contains(status.code), let location = headers.first(name: "location")
        else { return nil }
        return (location, headers)
    }

    /// Resolves `location` against the URL that answered with it. Absolute `ws`, `wss`, `http` and `https` URLs
    /// are accepted (`http` becomes `ws`, `https` becomes `wss`), as are references relative to `base`. A fragment
    /// is dropped: it is never sent.
    static func resolve(_ location: String, against base: WebSocketURL) throws(WebSocketClientError) -> WebSocketURL {
        var text = location.trimmingWhitespace()
        if let hash = text.firstIndex(of: "#") { text = text[..<hash] }
        guard !text.isEmpty else { throw .invalidRedirect(location, reason: "empty Location") }
        guard !text.contains(where: { $0 == " " || $0.isNewline }) else {
            throw .invalidRedirect(location, reason: "Location contains whitespace")
        }
        if let scheme = Self.scheme(of: text) {
            let rest = text.dropFirst(scheme.count + 1)
            guard rest.hasPrefix("//") else { throw .invalidRedirect(location, reason: "no authority after the scheme") }
            switch scheme.lowercased() {
            case "ws", "http": return try Self.parse("ws:" + rest, location)
            case "wss", "https": return try Self.parse("wss:" + rest, location)
            default: throw .invalidRedirect(location, reason: "unsupported scheme '\(scheme)'")
            }
        }
        if text.hasPrefix("//") {
            return try Self.parse((base.isSecure ? "wss:" : "ws:") + text, location)
        }
        let basePath = Self.split(Substring(base.requestTarget)).path
        let target: String
        if text.hasPrefix("/") {
            let (path, query) = Self.split(text)
            target = Self.removeDotSegments(path) + query
        } else if text.hasPrefix("?") {
            target = String(basePath + text)
        } else {
            let directory = basePath[...(basePath.lastIndex(of: "/") ?? basePath.startIndex)]
            let (path, query) = Self.split(text)
            target = Self.removeDotSegments(Substring(directory + path)) + query
        }
        var resolved = WebSocketURL(isSecure: base.isSecure, host: base.host, port: base.port, requestTarget: target)
        resolved.userinfo = base.userinfo
        return resolved
    }

    /// The `name=value` pairs of the `Set-Cookie` headers (their attributes are ignored).
    static func cookies(in headers: HTTPHeaders) -> [(name: String, value: String)] {
        headers["set-cookie"].compactMap { header in
            let pair = header.prefix { $0 != ";" }
            guard let equals = pair.firstIndex(of: "=") else { return nil }
            let name = pair[..<equals].trimmingWhitespace()
            guard !name.isEmpty else { return nil }
            return (String(name), String(pair[pair.index(after: equals)...].trimmingWhitespace()))
        }
    }

    private static func parse(_ url: String, _ location: String) throws(WebSocketClientError) -> WebSocketURL {
        do {
            return try WebSocketURL(url)
        } catch {
            if case .invalidURL(_, let reason) = error.base { throw .invalidRedirect(location, reason: reason) }
            throw error
        }
    }

    /// The scheme of an absolute URL (RFC 3986 §3.1), or `nil` for a relative reference.
    private static func scheme(of text: Substring) -> Substring? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let scheme = text[..<colon]
        guard let first = scheme.first, first.isASCII, first.isLetter,
            scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
        else { return nil }
        return scheme
    }

    /// Splits a request target into its path and its query (with the "?").
    private static func split(_ target: Substring) -> (path: Substring, query: Substring) {
        let question = target.firstIndex(of: "?") ?? target.endIndex
        return (target[..<question], target[question...])
    }

    /// Removes "." and ".." segments from an absolute path (RFC 3986 §5.2.4).
    static func removeDotSegments(_ path: Substring) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var output: [Substring] = []
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            switch segment {
            case ".":
                if isLast { output.append("") }
            case "..":
                if !output.isEmpty { output.removeLast() }
                if isLast { output.append("") }
            default:
                output.append(segment)
            }
        }
        return "/" + output.joined(separator: "/")
    }
}
