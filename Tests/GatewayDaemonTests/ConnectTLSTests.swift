import Foundation
import NIOHTTP1
import Testing

/// `wsgate connect` with TLS: mutual TLS with --cert/--key, and one-line errors with a hint for what fails.
@Suite("wsgate connect: TLS and failures in one line", .serialized)
struct ConnectTLSTests {
    /// Error output must never be a library's dump or carry a build path.
    private func expectOneCleanLine(_ text: String) {
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1, "\(text)")
        #expect(!text.contains(".swift") && !text.contains(".cc") && !text.contains("/.build/") && !text.contains("NIO"), "\(text)")
    }

    @Test func aRefusedConnectionSaysSoWithAHint() async throws {
        let client = try ConnectProcess(["ws://127.0.0.1:1/echo"])
        client.closeInput()
        #expect(await client.exitStatus() == 2)
        #expect(client.stderr.contains("wsgate connect: connection to 127.0.0.1:1 refused (hint: is the server running"), "\(client.stderr)")
        self.expectOneCleanLine(client.stderr)
    }

    @Test func wssToAPlainListenerSaysItDoesNotSpeakTLS() async throws {
        let daemon = try await DaemonProcess(yaml: "routes: [{path: /echo, handler: echo}]")
        let client = try ConnectProcess(["wss://127.0.0.1:\(daemon.webSocketPort)/echo", "--insecure", "--handshake-timeout", "5"])
        client.closeInput()
        #expect(await client.exitStatus() == 2)
        #expect(client.stderr.contains("does not speak TLS") && client.stderr.contains("hint: use ws://"), "\(client.stderr)")
        self.expectOneCleanLine(client.stderr)
        #expect(await daemon.stop() == 0)
    }

    @Test func mutualTLSWithCertAndKeyAndAHintForEachMissingPiece() async throws {
        let material = try ConfigCheckTests.Material()
        let daemon = try await DaemonProcess(yaml: """
            tls: {certificate: \(material.path("good.pem")), private_key: \(material.path("good.key")), client_ca: \(material.path("ca.pem")), require_client_certificate: true}
            routes: [{path: /echo, handler: echo}]
            """)
        let url = "wss://localhost:\(daemon.webSocketPort)/echo"

        // The server's certificate is from a CA the system does not trust.
        let untrusted = try ConnectProcess([url, "--handshake-timeout", "5"])
        untrusted.closeInput()
        #expect(await untrusted.exitStatus() == 2)
        #expect(untrusted.stderr.contains("not trusted") && untrusted.stderr.contains("--ca-file FILE"), "\(untrusted.stderr)")
        self.expectOneCleanLine(untrusted.stderr)

        // Trusted, but without a client certificate.
        let anonymous = try ConnectProcess([url, "--ca-file", material.path("ca.pem"), "--handshake-timeout", "5"])
        anonymous.closeInput()
        #expect(await anonymous.exitStatus() == 2)
        #expect(anonymous.stderr.contains("requires a client certificate") && anonymous.stderr.contains("--cert FILE --key FILE"), "\(anonymous.stderr)")
        self.expectOneCleanLine(anonymous.stderr)

        // A key that is not the certificate's is named before any connection.
        let mismatched = try ConnectProcess([url, "--ca-file", material.path("ca.pem"), "--cert", material.path("good.pem"), "--key", material.path("other.key")])
        mismatched.closeInput()
        #expect(await mismatched.exitStatus() == 2)
        #expect(mismatched.stderr.contains("\(material.path("other.key")): this private key does not match"), "\(mismatched.stderr)")
        self.expectOneCleanLine(mismatched.stderr)

        // With both: connected, and the gateway sees the client's certificate.
        let client = try ConnectProcess([url, "--ca-file", material.path("ca.pem"), "--cert", material.path("good.pem"), "--key", material.path("good.key")])
        client.send("over mutual TLS\n")
        #expect(await client.wait(for: "over mutual TLS\n"))
        let ids = DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections").body)["connections"] as? [String] ?? []
        let info = DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections/\(ids.first ?? "")").body)
        #expect((info["client_certificate"] as? String)?.contains("CN=good") == true, "\(info)")
        #expect(info["secure"] as? Bool == true)
        client.closeInput()
        #expect(await client.exitStatus() == 0)
        #expect(await daemon.stop() == 0)
    }

    @Test func certWithoutKeyIsAUsageError() async throws {
        let client = try ConnectProcess(["wss://127.0.0.1:1/", "--cert", "/nonexistent.pem"])
        client.closeInput()
        #expect(await client.exitStatus() == 64)
        #expect(client.stderr.contains("--cert needs --key"), "\(client.stderr)")
    }
}
