import NIOHTTP1

/// A refusal of an upgrade request: the HTTP status, a one-line plain-text reason for the body, and headers.
public struct WebSocketHandshakeRejection: Error, Sendable, Equatable {
    /// The HTTP status to answer with.
    public var status: HTTPResponseStatus
    /// The one-line reason written as the response body.
    public var reason: String
    /// Extra response headers.
    public var headers: HTTPHeaders

    /// Creates a rejection.
    public init(status: HTTPResponseStatus, reason: String, headers: HTTPHeaders = [:]) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

/// Limits the server applies to the HTTP request before anything else.
public struct WebSocketRequestLimits: Sendable, Hashable {
    /// The longest request target accepted (answer: 414).
    public var maxURILength: Int
    /// The most header bytes (names and values) accepted (answer: 431).
    public var maxHeaderBytes: Int

    /// Creates limits; the defaults are 8 KiB of URI and 16 KiB of headers.
    public init(maxURILength: Int = 8192, maxHeaderBytes: Int = 16384) {
        self.maxURILength = maxURILength
        self.maxHeaderBytes = maxHeaderBytes
    }
}

/// The server's checks of an upgrade request (RFC 6455 §4.2.1), in the order they are applied.
enum ServerHandshake {
    /// What a valid upgrade request offers.
    struct Offer {
        var key: String
        var subprotocols: [String]
        var extensions: [WebSocketExtensionElement?]
    }

    static func validate(_ head: HTTPRequestHead, limits: WebSocketRequestLimits) -> Result<Offer, WebSocketHandshakeRejection> {
        if head.uri.utf8.count > limits.maxURILength {
            return .failure(.init(status: .uriTooLong, reason: "request target longer than \(limits.maxURILength) bytes"))
        }
        let headerBytes = head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
        if headerBytes > limits.maxHeaderBytes {
            return .failure(.init(status: .requestHeaderFieldsTooLarge, reason: "request headers larger than \(limits.maxHeaderBytes) bytes"))
        }
        if head.version.major < 1 || (head.version.major == 1 && head.version.minor < 1) {
            return .failure(.init(status: .httpVersionNotSupported, reason: "WebSocket upgrade requires HTTP/1.1"))
        }
        guard head.method == .GET else {
            return .failure(.init(status: .methodNotAllowed, reason: "WebSocket upgrade requires GET", headers: ["Allow": "GET"]))
        }
        guard HandshakeRules.hasToken(head.headers, "upgrade", "websocket") else {
            return .failure(
                .init(
                    status: .upgradeRequired,
                    reason: "this endpoint only speaks WebSocket: send Upgrade: websocket",
                    headers: ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"]
                ))
        }
        guard HandshakeRules.hasToken(head.headers, "connection", "upgrade") else {
            return .failure(.init(status: .badRequest, reason: "missing Connection: Upgrade"))
        }
        guard !head.headers["host"].isEmpty else {
            return .failure(.init(status: .badRequest, reason: "missing Host"))
        }
        // RFC 9112 §3.2: a request with more than one Host is answered 400 (which one counts would be ambiguous).
        guard head.headers["host"].count == 1 else {
            return .failure(.init(status: .badRequest, reason: "more than one Host header"))
        }
        let versions = HandshakeRules.tokens(head.headers, "sec-websocket-version")
        guard !versions.isEmpty else {
            return .failure(.init(status: .badRequest, reason: "missing Sec-WebSocket-Version"))
        }
        guard versions == ["13"] else {
            return .failure(
                .init(
                    status: .upgradeRequired,
                    reason: "unsupported Sec-WebSocket-Version \(versions.joined(separator: ", ")); supported: 13",
                    headers: ["Sec-WebSocket-Version": "13"]
                ))
        }
        let keys = head.headers["sec-websocket-key"]
        guard let key = keys.first else {
            return .failure(.init(status: .badRequest, reason: "missing Sec-WebSocket-Key"))
        }
        guard keys.count == 1, HandshakeRules.isValidKey(key.trimmingWhitespace().description) else {
            return .failure(.init(status: .badRequest, reason: "malformed Sec-WebSocket-Key: must be base64 of 16 bytes"))
        }
        return .success(
            Offer(
                key: String(key.trimmingWhitespace()),
                subprotocols: HandshakeRules.tokens(head.headers, "sec-websocket-protocol").map(String.init),
                extensions: WebSocketExtensionElement.parse(headerValues: head.headers["sec-websocket-extensions"])
            ))
    }

    /// The 101 answer's headers.
    static func responseHeaders(key: String, subprotocol: String?, extensions: String?, extra: HTTPHeaders) -> HTTPHeaders {
        var headers: HTTPHeaders = [
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": HandshakeRules.acceptValue(forKey: key),
        ]
        if let subprotocol { headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol) }
        if let extensions { headers.add(name: "Sec-WebSocket-Extensions", value: extensions) }
        headers.add(contentsOf: extra)
        return headers
    }

    /// The server's own choice of subprotocol: its first preference that the client offered.
    static func chooseSubprotocol(offered: [String], supported: [String]) -> String? {
        supported.first { offered.contains($0) }
    }
}
