import NIOHTTP1
import Testing
@testable import WebSocketEngine

@Suite("Opening handshake rules (RFC 6455 §4)")
struct HandshakeTests {
    private let valid: HTTPHeaders = [
        "Host": "example.com", "Upgrade": "websocket", "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
    ]

    private func validate(method: HTTPMethod = .GET, uri: String = "/chat", removing: String? = nil, setting: (String, String)? = nil) -> Result<ServerHandshake.Offer, WebSocketHandshakeRejection> {
        var headers = self.valid
        if let removing { headers.remove(name: removing) }
        if let (name, value) = setting { headers.replaceOrAdd(name: name, value: value) }
        return ServerHandshake.validate(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers), limits: .init(maxURILength: 64, maxHeaderBytes: 512))
    }

    private func rejection(_ result: Result<ServerHandshake.Offer, WebSocketHandshakeRejection>) -> (UInt, String)? {
        if case .failure(let rejection) = result { return (rejection.status.code, rejection.reason) }
        return nil
    }

    @Test func computesTheRFCAcceptValue() {
        #expect(HandshakeRules.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func acceptsAValidRequestWithCaseInsensitiveTokens() throws {
        let offer = try self.validate(setting: ("Upgrade", "WebSocket")).get()
        #expect(offer.key == "dGhlIHNhbXBsZSBub25jZQ==")
    }

    @Test func rejectsEachBrokenRule() {
        #expect(self.rejection(self.validate(removing: "Sec-WebSocket-Version"))! == (400, "missing Sec-WebSocket-Version"))
        #expect(self.rejection(self.validate(setting: ("Sec-WebSocket-Version", "8")))! == (426, "unsupported Sec-WebSocket-Version 8; supported: 13"))
        #expect(self.rejection(self.validate(removing: "Sec-WebSocket-Key"))! == (400, "missing Sec-WebSocket-Key"))
        #expect(self.rejection(self.validate(setting: ("Sec-WebSocket-Key", "c2hvcnQ=")))! == (400, "malformed Sec-WebSocket-Key: must be base64 of 16 bytes"))
        #expect(self.rejection(self.validate(method: .POST))! == (405, "WebSocket upgrade requires GET"))
        #expect(self.rejection(self.validate(removing: "Connection"))! == (400, "missing Connection: Upgrade"))
        #expect(self.rejection(self.validate(removing: "Upgrade"))!.0 == 426)
        #expect(self.rejection(self.validate(removing: "Host"))! == (400, "missing Host"))
        #expect(self.rejection(self.validate(uri: "/" + String(repeating: "a", count: 64)))! == (414, "request target longer than 64 bytes"))
        #expect(self.rejection(self.validate(setting: ("X-Big", String(repeating: "b", count: 600))))! == (431, "request headers larger than 512 bytes"))
    }

    @Test func picksTheServersPreferredSubprotocol() {
        #expect(ServerHandshake.chooseSubprotocol(offered: ["b", "a"], supported: ["a", "b"]) == "a")
        #expect(ServerHandshake.chooseSubprotocol(offered: ["c"], supported: ["a", "b"]) == nil)
    }

    @Test func parsesURLs() throws {
        let plain = try WebSocketURL("ws://example.com/chat?room=1")
        #expect(plain.port == 80 && plain.requestTarget == "/chat?room=1" && !plain.isSecure)
        let secure = try WebSocketURL("wss://example.com")
        #expect(secure.port == 443 && secure.requestTarget == "/" && secure.isSecure)
        let v6 = try WebSocketURL("ws://[::1]:9001?x=1")
        #expect(v6.host == "::1" && v6.port == 9001 && v6.requestTarget == "/?x=1" && v6.hostHeader == "[::1]:9001")
        let v4 = try WebSocketURL("ws://127.0.0.1:8080/echo")
        #expect(v4.host == "127.0.0.1" && v4.hostHeader == "127.0.0.1:8080")
        for bad in ["http://x", "ws://", "ws://host:99999", "ws://host/#frag", "ws://[::1"] {
            #expect(throws: WebSocketClientError.self) { try WebSocketURL(bad) }
        }
    }
}
