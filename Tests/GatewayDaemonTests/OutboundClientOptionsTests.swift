import Foundation
import NIOCore
import NIOHTTP1
import Testing
import WebSocketEngine
import WebSocketTestKit

@Suite("wsgate daemon end to end: outbound TLS, proxy, credentials and redirects", .serialized)
struct OutboundClientOptionsTests {
    /// Writes the test CA and a `localhost` certificate to a temporary directory.
    static func certificates() throws -> (directory: URL, ca: String, certificate: String, key: String) {
        let authority = try TestCertificateAuthority()
        let identity = try authority.issue(commonName: "localhost", dnsNames: ["localhost"])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func write(_ name: String, _ text: String) throws -> String {
            let url = directory.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        return (directory, try write("ca.pem", authority.certificatePEM), try write("server.pem", identity.certificatePEM),
                try write("server.key", identity.privateKeyPEM))
    }

    @Test func aFailedTLSHandshakeIsLoggedAndCounted() async throws {
        let files = try Self.certificates()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        let daemon = try await DaemonProcess(yaml: """
            log: {level: info}
            tls: {certificate: \(files.certificate), private_key: \(files.key)}
            routes: [{path: /rpc, handler: echo}]
            """)
        // Plain text to the TLS listener.
        _ = try? await within(10, "the listener to close") {
            try await RawTCP.exchange(port: daemon.webSocketPort, send: "GET /rpc HTTP/1.1\r\nHost: x\r\n\r\n")
        }
        let line = try await daemon.logLine(containing: "TLS handshake from 127.0.0.1 failed: ")
        #expect(!line.contains("\n"), "\(line)")
        #expect(try await daemon.metric("wsgate_tls_failures_total") == 1)
        #expect(await daemon.stop() == 0)
    }

    @Test func secureUpstreamThroughAnAuthenticatingProxyWithCredentialsAndRedirects() async throws {
        let files = try Self.certificates()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        let upstream = try await DaemonProcess(yaml: """
            log: {level: warning}
            tls: {certificate: \(files.certificate), private_key: \(files.key)}
            routes: [{path: /rpc, handler: echo}]
            """)
        let proxy = try await TestConnectProxy.start(credentials: ("proxy-user", "proxy-pass"))
        let gateway = try await DaemonProcess(yaml: """
            log: {level: warning}
            outbound_defaults: {allowed_hosts: [127.0.0.1]}
            outbound:
              - socket_id: secure
                url: wss://127.0.0.1:\(upstream.webSocketPort)/rpc
                tls: {ca_file: \(files.ca), server_name: localhost}
                proxy: {url: "http://127.0.0.1:\(proxy.port)", username: proxy-user, password: proxy-pass}
                auth: {type: bearer, token: t0ken}
                cookies: {session: abc}
            routes: [{path: /api, handler: bridge, bridge: {outbound: secure}}]
            """)
        let info = DaemonProcess.json(try await gateway.admin(.GET, "/v1/connections/secure").body)
        #expect(info["state"] as? String == "open" && info["secure"] as? Bool == true)
        #expect(proxy.tunnelsOpened == 1 && proxy.targets == ["127.0.0.1:\(upstream.webSocketPort)"])
        let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(gateway.webSocketPort)/api")
        try await client.send(text: "over TLS through the proxy")
        #expect(try await client.receive() == .text("over TLS through the proxy"))

        // The upstream saw the credentials and the cookie.
        let ids = DaemonProcess.json(try await upstream.admin(.GET, "/v1/connections").body)["connections"] as? [String] ?? []
        #expect(ids.count == 1)
        let seen = DaemonProcess.json(try await upstream.admin(.GET, "/v1/connections/\(ids.first ?? "")").body)
        let headers = seen["headers"] as? [String: String] ?? [:]
        #expect(headers["authorization"] == "Bearer t0ken" && headers["cookie"] == "session=abc", "\(headers)")

        // A socket whose URL redirects to the upstream: followed when allowed, a clear error otherwise.
        let mover = try await CannedResponseServer.start { _ in
            "HTTP/1.1 302 Found\r\nLocation: wss://127.0.0.1:\(upstream.webSocketPort)/rpc\r\nContent-Length: 0\r\n\r\n"
        }
        let refused = try await gateway.admin(.POST, "/v1/outbound", body: """
            {"socket_id": "moved", "url": "ws://127.0.0.1:\(mover.port)/old", "tls": {"ca_file": "\(files.ca)", "server_name": "localhost"}}
            """)
        #expect(refused.status == 502 && refused.body.contains("302"), "\(refused.body)")
        let followed = try await gateway.admin(.POST, "/v1/outbound", body: """
            {"socket_id": "moved", "url": "ws://127.0.0.1:\(mover.port)/old", "max_redirects": 1,
             "tls": {"ca_file": "\(files.ca)", "server_name": "localhost"}}
            """)
        #expect(followed.status == 201, "\(followed.body)")
        // Without the CA the upstream's certificate is refused.
        let untrusted = try await gateway.admin(.POST, "/v1/outbound", body: """
            {"url": "wss://127.0.0.1:\(upstream.webSocketPort)/rpc"}
            """)
        #expect(untrusted.status == 502, "\(untrusted.body)")

        try await client.close()
        try await mover.close()
        #expect(await gateway.stop() == 0)
        await proxy.shutdown()
        #expect(await upstream.stop() == 0)
    }
}
