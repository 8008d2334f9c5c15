import NIOHTTP1

/// The client's side of the opening handshake (RFC 6455 §4.1): the request, and the checks of the answer.
enum ClientHandshake {
    /// What the server agreed to.
    struct Agreement {
        var subprotocol: String?
        var compression: PerMessageDeflateParameters?
    }

    static func requestHead(
        url: WebSocketURL,
        key: String,
        subprotocols: [String],
        compression: PerMessageDeflateConfiguration?,
        extraHeaders: HTTPHeaders
    ) -> HTTPRequestHead {
        var headers: HTTPHeaders = [
            "Host": url.hostHeader,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        ]
        if !subprotocols.isEmpty {
            headers.add(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", "))
        }
        if let compression {
            headers.add(name: "Sec-WebSocket-Extensions", value: PerMessageDeflateNegotiation.offer(configuration: compression).headerValue)
        }
        for (name, value) in extraHeaders where headers[name].isEmpty {
            headers.add(name: name, value: value)
        }
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: url.requestTarget, headers: headers)
    }

    /// The caller's headers with the `Authorization` and `Cookie` headers the configuration asks for: an
    /// `Authorization` header already present wins over `authorization`; the cookies (the caller's `Cookie`
    /// header first, then `cookies` sorted by name) become one `Cookie` header.
    static func extraHeaders(
        _ headers: HTTPHeaders,
        authorization: WebSocketAuthorization?,
        cookies: [String: String]
    ) -> HTTPHeaders {
        var headers = headers
        if let authorization, headers["authorization"].isEmpty {
            headers.add(name: "Authorization", value: authorization.headerValue)
        }
        if !cookies.isEmpty {
            let pairs = headers["cookie"] + cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            headers.remove(name: "cookie")
            headers.add(name: "Cookie", value: pairs.joined(separator: "; "))
        }
        return headers
    }

    /// Checks a 101 answer; any other status is reported by the caller with the body.
    static func validate(
        _ head: HTTPResponseHead,
        key: String,
        subprotocols: [String],
        compression: PerMessageDeflateConfiguration?
    ) -> Result<Agreement, WebSocketClientError> {
        guard HandshakeRules.hasToken(head.headers, "upgrade", "websocket") else { return .failure(.missingUpgradeHeader) }
        guard HandshakeRules.hasToken(head.headers, "connection", "upgrade") else { return .failure(.missingConnectionHeader) }
        let expected = HandshakeRules.acceptValue(forKey: key)
        let accepts = head.headers["sec-websocket-accept"]
        guard accepts.count == 1, accepts[0].trimmingWhitespace() == expected else {
            return .failure(.invalidAccept(expected: expected, received: accepts.first))
        }
        let chosen = HandshakeRules.tokens(head.headers, "sec-websocket-protocol")
        var subprotocol: String?
        if let first = chosen.first {
            guard chosen.count == 1, subprotocols.contains(String(first)) else {
                return .failure(.unexpectedSubprotocol(chosen.joined(separator: ", ")))
            }
            subprotocol = String(first)
        }
        let answer = WebSocketExtensionElement.parse(headerValues: head.headers["sec-websocket-extensions"])
        switch PerMessageDeflateNegotiation.validate(answer: answer, offered: compression) {
        case .success(let parameters):
            return .success(Agreement(subprotocol: subprotocol, compression: parameters))
        case .failure(let failure):
            return .failure(.invalidExtensions(failure.reason))
        }
    }
}
