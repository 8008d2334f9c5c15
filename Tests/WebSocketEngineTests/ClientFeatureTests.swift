import NIOCore
import NIOHTTP1
import Testing
@testable import WebSocketEngine
import WebSocketTestKit

private typealias Rejection = WebSocketHandshakeRejection

@Suite("Client features over loopback: proxy, redirects, authorization, cookies")
struct ClientFeatureTests {
    /// Accepts `/final` (echo) and records every request head; other paths answer what `redirect` says.
    private func recordingServer(
        _ seen: Mailbox<HTTPRequestHead>,
        redirect: @escaping @Sendable (WebSocketUpgradeRequest) -> Rejection? = { _ in nil }
    ) -> @Sendable (WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision {
        { request in
            seen.put(request.head)
            if let rejection = redirect(request) { return .reject(rejection) }
            return await echoUpgrade(request)
        }
    }

    private func expectKind(
        _ kind: WebSocketClientError.Kind,
        _ url: String,
        _ configuration: WebSocketClientConfiguration
    ) async -> WebSocketClientError? {
        do {
            let socket = try await WebSocketClient.connect(to: url, configuration: configuration)
            Issue.record("connected to \(url); expected \(kind)")
            _ = try? await socket.close()
        } catch let error as WebSocketClientError {
            #expect(error.kind == kind, "\(error)")
            return error
        } catch {
            Issue.record("expected \(kind), got \(error)")
        }
        return nil
    }

    // MARK: Proxy

    @Test func echoesThroughTheProxy() async throws {
        let proxy = try await TestConnectProxy.start()
        try await withServer(onUpgrade: echoUpgrade) { port in
            let configuration = WebSocketClientConfiguration(proxy: WebSocketProxy(host: "127.0.0.1", port: proxy.port))
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: configuration)
            #expect(socket.remoteAddress?.port == proxy.port)
            try await socket.send(text: "through the tunnel")
            #expect(try await socket.receive() == .text("through the tunnel"))
            #expect(try await socket.close().code == .normalClosure)
            #expect(proxy.tunnelsOpened == 1 && proxy.targets == ["127.0.0.1:\(port)"])
        }
        await proxy.shutdown()
    }

    @Test func secureEchoThroughTheProxyVerifiesTheTargetNotTheProxy() async throws {
        let authority = try TestCertificateAuthority()
        var server = WebSocketServerConfiguration()
        server.tls = authority.serverTLS(try authority.issue(commonName: "localhost"))
        let proxy = try await TestConnectProxy.start()
        try await withServer(server, onUpgrade: echoUpgrade) { port in
            // The proxy is 127.0.0.1, which the certificate does not name: only the target's name verifies.
            let viaProxy = WebSocketProxy(host: "127.0.0.1", port: proxy.port)
            let socket = try await WebSocketClient.connect(
                to: "wss://localhost:\(port)/", configuration: .init(tls: authority.clientTLS(), proxy: viaProxy))
            #expect(socket.isSecure)
            try await socket.send(text: "TLS in a tunnel")
            #expect(try await socket.receive() == .text("TLS in a tunnel"))
            try await socket.close()
            #expect(proxy.targets == ["localhost:\(port)"])
            let wrongName = WebSocketClientConfiguration(tls: authority.clientTLS(), serverName: "example.org", proxy: viaProxy)
            await #expect(throws: (any Error).self) {
                _ = try await WebSocketClient.connect(to: "wss://localhost:\(port)/", configuration: wrongName)
            }
        }
        await proxy.shutdown()
    }

    @Test func proxyCredentialsAreSentOrTheTunnelIsRefused() async throws {
        let proxy = try await TestConnectProxy.start(credentials: ("alice", "pa:ss w"))
        try await withServer(onUpgrade: echoUpgrade) { port in
            let url = "ws://127.0.0.1:\(port)/"
            let right = try WebSocketProxy(url: "http://alice:pa%3Ass%20w@127.0.0.1:\(proxy.port)")
            let socket = try await WebSocketClient.connect(to: url, configuration: .init(proxy: right))
            try await socket.send(text: "authenticated")
            #expect(try await socket.receive() == .text("authenticated"))
            try await socket.close()
            let missing = await self.expectKind(.proxyRefused, url, .init(proxy: WebSocketProxy(host: "127.0.0.1", port: proxy.port)))
            #expect(missing?.status == .proxyAuthenticationRequired)
            #expect(missing?.description.contains("authentication required") == true)
            let wrong = WebSocketProxy(host: "127.0.0.1", port: proxy.port, username: "alice", password: "guess")
            #expect(await self.expectKind(.proxyRefused, url, .init(proxy: wrong))?.status == .proxyAuthenticationRequired)
            #expect(proxy.tunnelsOpened == 1)
        }
        await proxy.shutdown()
    }

    @Test func noProxyHostsAreReachedDirectly() async throws {
        let proxy = try await TestConnectProxy.start()
        try await withServer(onUpgrade: echoUpgrade) { port in
            for noProxy in [["localhost", "127.0.0.1"], ["*"]] {
                let configuration = WebSocketClientConfiguration(
                    proxy: WebSocketProxy(host: "127.0.0.1", port: proxy.port, noProxy: noProxy))
                let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/", configuration: configuration)
                #expect(socket.remoteAddress?.port == port)
                try await socket.send(text: "direct")
                #expect(try await socket.receive() == .text("direct"))
                try await socket.close()
            }
            #expect(proxy.tunnelsOpened == 0)
        }
        await proxy.shutdown()
    }

    @Test func aRefusedTunnelAndASilentProxyAreErrors() async throws {
        let proxy = try await TestConnectProxy.start()
        // The test proxy refuses targets off the loopback interface without connecting anywhere.
        let refused = await self.expectKind(
            .proxyRefused, "ws://192.0.2.1/", .init(proxy: WebSocketProxy(host: "127.0.0.1", port: proxy.port)))
        #expect(refused?.status == .forbidden)
        await proxy.shutdown()
        let silent = try await CannedResponseServer.start(closeAfterResponse: false) { _ in "" }
        _ = await self.expectKind(
            .handshakeTimeout, "ws://127.0.0.1:9/",
            .init(handshakeTimeout: .milliseconds(200), proxy: WebSocketProxy(host: "127.0.0.1", port: silent.port)))
        try await silent.close()
    }

    // MARK: Redirects

    @Test func followsRedirectsWithHeadersAuthorizationAndCookies() async throws {
        let seen = Mailbox<HTTPRequestHead>()
        let server = self.recordingServer(seen) { request in
            let port = request.localAddress?.port ?? 0
            switch request.path {
            case "/start":
                return Rejection(status: .found, reason: "moved", headers: ["Location": "hop?step=1", "Set-Cookie": "session=abc; Path=/; HttpOnly"])
            case "/hop":
                return Rejection(status: .permanentRedirect, reason: "moved", headers: ["Location": "http://127.0.0.1:\(port)/final?x=1"])
            default:
                return nil
            }
        }
        try await withServer(onUpgrade: server) { port in
            let configuration = WebSocketClientConfiguration(
                headers: ["X-Trace": "42"], maxRedirects: 2, authorization: .bearer("t0ken"), cookies: ["theme": "dark"])
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/start", configuration: configuration)
            #expect(socket.request.uri == "/final?x=1")
            try await socket.send(text: "arrived")
            #expect(try await socket.receive() == .text("arrived"))
            try await socket.close()
            let first = await seen.take()
            #expect(first?.uri == "/start" && first?.headers["cookie"] == ["theme=dark"])
            #expect(await seen.take()?.uri == "/hop?step=1")
            let last = await seen.take()
            #expect(last?.uri == "/final?x=1")
            #expect(last?.headers["cookie"] == ["session=abc; theme=dark"])
            #expect(last?.headers["authorization"] == ["Bearer t0ken"] && last?.headers["x-trace"] == ["42"])
        }
    }

    @Test func aRedirectToAnotherOriginDropsCredentialsAndCookies() async throws {
        let seen = Mailbox<HTTPRequestHead>()
        let target = self.recordingServer(seen) { _ in nil }
        try await withServer(onUpgrade: target) { targetPort in
            let origin = self.recordingServer(Mailbox<HTTPRequestHead>()) { _ in
                Rejection(status: .found, reason: "elsewhere", headers: ["Location": "ws://127.0.0.1:\(targetPort)/landing", "Set-Cookie": "session=abc"])
            }
            try await withServer(onUpgrade: origin) { originPort in
                let configuration = WebSocketClientConfiguration(
                    headers: ["X-Trace": "42", "Authorization": "Bearer explicit"], maxRedirects: 1,
                    authorization: .bearer("t0ken"), cookies: ["theme": "dark"])
                let socket = try await WebSocketClient.connect(to: "ws://u:p@127.0.0.1:\(originPort)/start", configuration: configuration)
                try await socket.close()
                let landed = await seen.take()
                #expect(landed?.uri == "/landing" && landed?.headers["x-trace"] == ["42"])
                #expect(landed?.headers["authorization"].isEmpty == true && landed?.headers["cookie"].isEmpty == true)
            }
        }
    }

    @Test func stopsAfterMaxRedirectsAndTreatsRedirectsAsErrorsByDefault() async throws {
        let seen = Mailbox<HTTPRequestHead>()
        let server = self.recordingServer(seen) { request in
            switch request.path {
            case "/loop": return Rejection(status: .found, reason: "again", headers: ["Location": "/loop"])
            case "/ftp": return Rejection(status: .movedPermanently, reason: "away", headers: ["Location": "ftp://example.org/"])
            case "/nolocation": return Rejection(status: .found, reason: "nowhere")
            default: return nil
            }
        }
        try await withServer(onUpgrade: server) { port in
            let url = "ws://127.0.0.1:\(port)"
            let tooMany = await self.expectKind(.tooManyRedirects, "\(url)/loop", .init(maxRedirects: 2))
            #expect(tooMany?.description == "more than 2 redirects")
            for _ in 0..<3 { #expect(await seen.take()?.uri == "/loop") }
            let plain = await self.expectKind(.unexpectedStatus, "\(url)/loop", .init())
            #expect(plain?.status == .found && plain?.responseHeaders?["location"] == ["/loop"])
            #expect(await seen.take()?.uri == "/loop")
            _ = await self.expectKind(.invalidRedirect, "\(url)/ftp", .init(maxRedirects: 3))
            #expect(await self.expectKind(.unexpectedStatus, "\(url)/nolocation", .init(maxRedirects: 3))?.status == .found)
        }
    }

    // MARK: Authorization and cookies

    @Test func authorizationAndCookiesReachTheServer() async throws {
        let seen = Mailbox<HTTPRequestHead>()
        try await withServer(onUpgrade: self.recordingServer(seen)) { port in
            func headers(_ url: String, _ configuration: WebSocketClientConfiguration) async throws -> HTTPHeaders {
                let socket = try await WebSocketClient.connect(to: url, configuration: configuration)
                try await socket.close()
                return await seen.take()?.headers ?? [:]
            }
            let url = "ws://127.0.0.1:\(port)/final"
            var seenHeaders = try await headers(url, .init(authorization: .basic(username: "alice", password: "s3cret")))
            #expect(seenHeaders["authorization"] == ["Basic YWxpY2U6czNjcmV0"])
            seenHeaders = try await headers(url, .init(authorization: .bearer("abc.def")))
            #expect(seenHeaders["authorization"] == ["Bearer abc.def"])
            seenHeaders = try await headers("ws://us%40er:p%3Ass@127.0.0.1:\(port)/final", .init())
            #expect(seenHeaders["authorization"] == ["Basic dXNAZXI6cDpzcw=="])
            seenHeaders = try await headers("ws://user:pass@127.0.0.1:\(port)/final", .init(authorization: .bearer("wins")))
            #expect(seenHeaders["authorization"] == ["Bearer wins"])
            seenHeaders = try await headers(url, .init(headers: ["Authorization": "Custom x"], authorization: .bearer("loses")))
            #expect(seenHeaders["authorization"] == ["Custom x"])
            seenHeaders = try await headers(url, .init(cookies: ["b": "2", "a": "1"]))
            #expect(seenHeaders["cookie"] == ["a=1; b=2"])
            seenHeaders = try await headers(url, .init(headers: ["Cookie": "z=0"], cookies: ["a": "1"]))
            #expect(seenHeaders["cookie"] == ["z=0; a=1"])
            seenHeaders = try await headers(url, .init())
            #expect(seenHeaders["authorization"].isEmpty && seenHeaders["cookie"].isEmpty)
        }
    }

    // MARK: Values

    @Test func proxyURLsParseOrFailWithInvalidProxy() throws {
        var proxy = try WebSocketProxy(url: "http://127.0.0.1:3128")
        #expect(proxy == WebSocketProxy(host: "127.0.0.1", port: 3128))
        proxy = try WebSocketProxy(url: "HTTP://proxy.example/", noProxy: ["*"])
        #expect(proxy == WebSocketProxy(host: "proxy.example", port: 80, noProxy: ["*"]))
        proxy = try WebSocketProxy(url: "http://us%3Aer:p%40ss@[::1]:8080")
        #expect(proxy == WebSocketProxy(host: "::1", port: 8080, username: "us:er", password: "p@ss"))
        #expect(proxy.connectRequest(host: "::1", port: 9) == "CONNECT [::1]:9 HTTP/1.1\r\nHost: [::1]:9\r\nProxy-Authorization: Basic dXM6ZXI6cEBzcw==\r\n\r\n")
        for bad in ["https://p:1", "socks5://p:1", "p:3128", "http://:80", "http://p:0", "http://p:99999", "http://p:1/path", "http://[::1"] {
            #expect(throws: WebSocketClientError.self, "\(bad)") { _ = try WebSocketProxy(url: bad) }
            do { _ = try WebSocketProxy(url: bad) } catch { #expect(error.kind == .invalidProxy) }
        }
    }

    @Test func noProxyMatchesNamesSuffixesAndAddresses() {
        let proxy = WebSocketProxy(host: "p", port: 1, noProxy: ["example.com", ".internal", "*.corp.test", "10.0.0.1", "[::1]"])
        for direct in ["example.com", "EXAMPLE.com", "example.com.", "a.internal", "x.y.corp.test", "10.0.0.1", "::1", "[0:0::1]"] {
            #expect(!proxy.applies(to: direct), "\(direct)")
        }
        for proxied in ["www.example.com", "internal", "corp.test", "10.0.0.2", "::2", "other.org", "notexample.com"] {
            #expect(proxy.applies(to: proxied), "\(proxied)")
        }
        #expect(!WebSocketProxy(host: "p", port: 1, noProxy: ["*"]).applies(to: "anything"))
        #expect(WebSocketProxy(host: "p", port: 1).applies(to: "localhost"))
    }

    @Test func proxyAnswersAreReadInPiecesAndBounded() {
        var parser = ProxyConnectParser()
        var bytes = ByteBuffer(string: "HTTP/1.1 200 Connection established\r\nVia: te")
        #expect(parser.receive(&bytes) == .needMoreData)
        bytes = ByteBuffer(string: "st\r\n\r\n\u{16}\u{03}")
        #expect(parser.receive(&bytes) == .established(leftover: ByteBuffer(bytes: [0x16, 0x03])))
        func answer(_ text: String) -> ProxyConnectParser.Result {
            var parser = ProxyConnectParser()
            var bytes = ByteBuffer(string: text)
            return parser.receive(&bytes)
        }
        #expect(answer("HTTP/1.0 407 Proxy Authentication Required\r\n\r\n") == .refused(.proxyAuthenticationRequired, reason: "Proxy Authentication Required"))
        #expect(answer("HTTP/1.1 204\r\n\r\n") == .established(leftover: ByteBuffer()))
        #expect(answer("SSH-2.0-OpenSSH_9.6\r\n\r\n") == .malformed("status line 'SSH-2.0-OpenSSH_9.6'"))
        #expect(answer("HTTP/1.1 200 OK\r\nX: " + String(repeating: "x", count: 17_000)) == .tooLarge(16 * 1024))
        #expect(answer("HTTP/1.1 200 OK\r\nX: " + String(repeating: "x", count: 17_000) + "\r\n\r\n") == .tooLarge(16 * 1024))
    }

    @Test func authorizationHeaderValues() {
        // RFC 7617 §2's example.
        #expect(WebSocketAuthorization.basic(username: "Aladdin", password: "open sesame").headerValue == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        #expect(WebSocketAuthorization.bearer("mF_9.B5f-4.1JqM").headerValue == "Bearer mF_9.B5f-4.1JqM")
    }

    @Test func urlsKeepDecodedUserinfoOutOfTheirDescription() throws {
        let url = try WebSocketURL("ws://us%40er:p%3Ass@example.org:8080/a")
        #expect(url.userinfo?.user == "us@er" && url.userinfo?.password == "p:ss")
        #expect(url.host == "example.org" && url.port == 8080 && url.description == "ws://example.org:8080/a")
        #expect(try WebSocketURL("ws://token@h/").userinfo?.password == "")
        #expect(try WebSocketURL("ws://h/").userinfo == nil)
    }

    @Test func redirectLocationsResolveAgainstTheCurrentURL() throws {
        let base = try WebSocketURL("wss://h:8443/a/b?q=1")
        func resolve(_ location: String) throws -> String { try WebSocketRedirect.resolve(location, against: base).description }
        #expect(try resolve("c") == "wss://h:8443/a/c")
        #expect(try resolve("../x/./y") == "wss://h:8443/x/y")
        #expect(try resolve("?y=2") == "wss://h:8443/a/b?y=2")
        #expect(try resolve("/p/../q?r#frag") == "wss://h:8443/q?r")
        #expect(try resolve("//other:9/z") == "wss://other:9/z")
        #expect(try resolve("http://s.example/t") == "ws://s.example/t")
        #expect(try resolve("HTTPS://s.example") == "wss://s.example/")
        for bad in ["", "ftp://x/", "ws:nohost", "ws://[::1/", "ws://h:0/"] {
            #expect(throws: WebSocketClientError.self, "\(bad)") { _ = try WebSocketRedirect.resolve(bad, against: base) }
        }
        let cookies = WebSocketRedirect.cookies(
            in: HTTPHeaders([("Set-Cookie", "a=1; Path=/"), ("set-cookie", " b = two ;Secure"), ("Set-Cookie", "junk")]))
        #expect(cookies.map { "\($0.name)=\($0.value)" } == ["a=1", "b=two"])
    }
}
