import Testing
@testable import WebSocketEngine

/// Inputs the fuzz targets of `Fuzz/` found to break the engine (their reproducers are in `Fuzz/Corpus/`).
@Suite("Fuzz regressions: engine")
struct EngineFuzzRegressionTests {
    /// A host with brackets or colons outside an IPv6 literal was accepted: a redirect to
    /// `ws://server[::2]:9000/` was followed with `Host: [server[::2]]:9000`, a URL whose text no longer parses.
    @Test func hostsThatCannotBeWrittenBackAreRefused() throws {
        for bad in ["ws://server[::2]:9000/a", "ws://a]b/", "ws://a:b:80/", "ws://[::1]x]/", "ws://[a b:1]/", "ws://[]/", "ws://[ab]/", "ws://a\u{1}b/"] {
            #expect(throws: WebSocketClientError.self, "\(bad)") { try WebSocketURL(bad) }
        }
        let base = try WebSocketURL("ws://example.com:8080/chat/room?x=1")
        #expect(throws: WebSocketClientError.self) { try WebSocketRedirect.resolve("ws://server_no_context_takeover[::2]:9000/a?b", against: base) }
        for good in ["ws://[::1]:9001/", "ws://[fe80::1%25eth0]/", "ws://127.0.0.1/", "wss://bücher.example/", "ws://a_b-c.example~/"] {
            let url = try WebSocketURL(good)
            var again = try WebSocketURL(url.description)
            again.userinfo = url.userinfo
            #expect(again == url, "\(good)")
        }
    }
}
