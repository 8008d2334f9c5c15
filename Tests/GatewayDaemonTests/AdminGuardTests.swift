import Foundation
import NIOHTTP1
import Testing
import WebSocketTestKit

/// The management API cannot be driven from a browser page it did not serve: the probe's cross-site requests
/// (a `text/plain` broadcast, a foreign `Origin`, a rebound `Host`) are refused; curl on loopback still works.
@Suite("wsgate daemon end to end: the management API refuses cross-site requests", .serialized)
struct AdminGuardTests {
    static let config = "log: {level: warning}\nroutes: [{path: /echo, handler: echo}]"

    @Test func withoutATokenOnlyLoopbackHostsJSONBodiesAndItsOwnOriginAreServed() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let port = daemon.adminPort
        let broadcast = #"{"message": "hi"}"#
        // The probe: a page's "simple" request with a text/plain body.
        var answer = try await daemon.rawAdmin("POST /v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: text/plain", body: broadcast)
        #expect(answer.status == 415 && answer.json["type"] as? String == "unsupported_media_type" && answer.json["status"] as? Int == 415, "\(answer.text)")
        answer = try await daemon.rawAdmin("POST /v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/x-www-form-urlencoded", body: broadcast)
        #expect(answer.status == 415, "\(answer.text)")
        // DNS rebinding: the page's own name reaches the listener.
        for host in ["attacker.example", "attacker.example:\(port)", "127.0.0.1.nip.io:\(port)", "localhost:1"] {
            answer = try await daemon.rawAdmin("GET /v1/connections HTTP/1.1\r\nHost: \(host)")
            #expect(answer.status == 403 && answer.json["type"] as? String == "host_not_allowed", "\(host): \(answer.text)")
        }
        answer = try await daemon.rawAdmin("GET /v1/connections HTTP/1.1")
        #expect(answer.status == 403, "\(answer.text)")
        // A page on another origin, even with a JSON body it could only send after a preflight.
        answer = try await daemon.rawAdmin(
            "POST /v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nOrigin: http://evil.example\r\nContent-Type: application/json", body: broadcast)
        #expect(answer.status == 403 && answer.json["type"] as? String == "origin_not_allowed", "\(answer.text)")
        answer = try await daemon.rawAdmin("GET /healthz HTTP/1.1\r\nHost: localhost:\(port)\r\nOrigin: http://localhost:3000")
        #expect(answer.status == 403, "\(answer.text)")
        answer = try await daemon.rawAdmin("GET /healthz HTTP/1.1\r\nHost: localhost:\(port)\r\nOrigin: null")
        #expect(answer.status == 403, "\(answer.text)")
        answer = try await daemon.rawAdmin("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nHost: attacker.example")
        #expect(answer.status == 400 && answer.text.contains("Host"), "\(answer.text)")
        // What is served: loopback names with or without the port, the listener's own origin, curl's requests.
        for host in ["localhost", "127.0.0.1", "[::1]", "localhost:\(port)", "127.0.0.1:\(port)", "[::1]:\(port)"] {
            answer = try await daemon.rawAdmin("GET /v1/connections HTTP/1.1\r\nHost: \(host)")
            #expect(answer.status == 200, "\(host): \(answer.text)")
        }
        answer = try await daemon.rawAdmin(
            "POST /v1/broadcast HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nOrigin: http://127.0.0.1:\(port)\r\nContent-Type: application/json; charset=utf-8", body: broadcast)
        #expect(answer.status == 200, "\(answer.text)")
        #expect(try await daemon.admin(.POST, "/v1/broadcast", body: broadcast).status == 200)
        #expect(try await daemon.admin(.PUT, "/v1/connections/nobody/groups/g").status == 404)
        #expect(await daemon.stop() == 0)
    }

    @Test func anAutoTokenIsGeneratedPrintedAndRequiredAndForeignOriginsAreStillRefused() async throws {
        let daemon = try await DaemonProcess(yaml: "admin: {listen: 127.0.0.1:0, token: auto}\n" + Self.config)
        let token = try #require(daemon.banner.firstMatch(of: /bearer token ([0-9a-f]{32})/)?.1).description
        #expect(try await daemon.admin(.GET, "/v1/connections").status == 401)
        #expect(try await daemon.admin(.GET, "/v1/connections", token: "auto").status == 401)
        #expect(try await daemon.admin(.GET, "/v1/connections", token: token).status == 200)
        let answer = try await daemon.rawAdmin(
            "GET /v1/connections HTTP/1.1\r\nHost: 127.0.0.1:\(daemon.adminPort)\r\nOrigin: http://evil.example\r\nAuthorization: Bearer \(token)")
        #expect(answer.status == 403 && answer.json["type"] as? String == "origin_not_allowed", "\(answer.text)")
        #expect(await daemon.stop() == 0)
        let other = try await DaemonProcess(yaml: "admin: {listen: 127.0.0.1:0, token: auto}\n" + Self.config)
        #expect(!other.banner.contains(token))
        #expect(await other.stop() == 0)
    }

    @Test func anotherMethodOnAKnownPathIs405WithAllow() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        for (method, path, allow) in [("PATCH", "/v1/broadcast", "POST"), ("GET", "/v1/outbound", "POST"), ("POST", "/v1/connections", "GET, DELETE"), ("PUT", "/v1/connections/x", "GET, DELETE")] {
            let answer = try await daemon.rawAdmin("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1")
            #expect(answer.status == 405 && answer.json["type"] as? String == "method_not_allowed", "\(method) \(path): \(answer.text)")
            #expect(answer.text.contains("\r\nAllow: \(allow)\r\n") || answer.text.contains("\r\nallow: \(allow)\r\n"), "\(answer.text)")
        }
        #expect(try await daemon.admin(.GET, "/v2/nothing").status == 404)
        #expect(await daemon.stop() == 0)
    }
}
