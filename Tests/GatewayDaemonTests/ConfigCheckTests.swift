import Foundation
import GatewayCore
import GatewayDaemon
import Testing
import WebSocketTestKit

/// `wsgate check` reports every error of a file, and the TLS files it names; `serve` names the file.
@Suite("wsgate check: every error, and the TLS files", .serialized)
struct ConfigCheckTests {
    /// A scratch directory with a CA, a valid identity, an expired one, one not yet valid, and a stray key.
    final class Material {
        let directory: URL
        init() throws {
            self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-tls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
            let ca = try TestCertificateAuthority()
            let now = Date()
            try self.write("ca.pem", ca.certificatePEM)
            try self.write(try ca.issue(commonName: "good"), as: "good")
            try self.write(try ca.issue(commonName: "old", validity: (now - 86400 * 30)...(now - 86400)), as: "old")
            try self.write(try ca.issue(commonName: "future", validity: (now + 86400)...(now + 86400 * 30)), as: "future")
            try self.write("other.key", try ca.issue(commonName: "other").privateKeyPEM)
            try self.write("garbage.pem", "not a certificate\n")
        }
        deinit { try? FileManager.default.removeItem(at: self.directory) }

        func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }
        private func write(_ name: String, _ text: String) throws {
            try text.write(to: self.directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        private func write(_ identity: TestCertificateAuthority.Identity, as name: String) throws {
            try self.write("\(name).pem", identity.certificatePEM)
            try self.write("\(name).key", identity.privateKeyPEM)
        }
        /// Writes `yaml` as a config file in the directory; returns its path.
        func config(_ yaml: String) throws -> String {
            let file = self.directory.appendingPathComponent("wsgate-\(UUID().uuidString).yaml")
            try yaml.write(to: file, atomically: true, encoding: .utf8)
            return file.path
        }
    }

    @Test func everyErrorOfAFileIsReportedWithItsKey() async throws {
        let material = try Material()
        let file = try material.config("""
            listen: 127.0.0.1:80800
            limits: {idle_timeout: soon, max_message_size: 1KiB}
            lgo: {level: info}
            routes:
              - path: /a
                handler: echo
                rate_limit: {messages_per_second: -1}
              - path: /b
                handler: nonsense
              - path: /c
                handler: echo
                colour: blue
            outbound:
              - {url: 'ws://127.0.0.1:1/', socket_id: up, reconnect: {max_attempts: many}}
            """)
        let (status, output) = try await DaemonProcess.run(["check", "--config", file])
        #expect(status == 1)
        for key in ["listen", "limits.idle_timeout", "lgo", "routes[0].rate_limit.messages_per_second", "routes[1].handler", "routes[2].colour", "outbound[0].reconnect.max_attempts", "outbound[0].reconnect.strategy"] {
            #expect(output.contains("config error at \(key):"), "\(key) missing in:\n\(output)")
        }
        #expect(output.contains("\(file): config error at"), "\(output)")
        #expect(output.contains("has 8 errors"), "\(output)")
    }

    @Test func tlsFilesAreCheckedAndNamed() async throws {
        let material = try Material()
        func check(_ tls: String) async throws -> (status: Int32, output: String) {
            try await DaemonProcess.run(["check", "--config", try material.config("tls: \(tls)\nroutes: [{path: /e, handler: echo}]")])
        }
        let good = try await check("{certificate: \(material.path("good.pem")), private_key: \(material.path("good.key")), client_ca: \(material.path("ca.pem"))}")
        #expect(good.status == 0 && good.output.contains("is valid"), "\(good.output)")

        let missing = try await check("{certificate: \(material.path("none.pem")), private_key: \(material.path("good.key"))}")
        #expect(missing.status == 1 && missing.output.contains("config error at tls.certificate: got '\(material.path("none.pem"))' (no such file)"), "\(missing.output)")

        let expired = try await check("{certificate: \(material.path("old.pem")), private_key: \(material.path("old.key"))}")
        #expect(expired.status == 1 && expired.output.contains("tls.certificate") && expired.output.contains("expired on"), "\(expired.output)")

        let future = try await check("{certificate: \(material.path("future.pem")), private_key: \(material.path("future.key"))}")
        #expect(future.status == 1 && future.output.contains("is not valid before"), "\(future.output)")

        let mismatch = try await check("{certificate: \(material.path("good.pem")), private_key: \(material.path("other.key"))}")
        #expect(mismatch.status == 1 && mismatch.output.contains("config error at tls.private_key: got '\(material.path("other.key"))'"), "\(mismatch.output)")
        #expect(mismatch.output.contains("does not match the certificate in \(material.path("good.pem"))"))

        let garbage = try await check("{certificate: \(material.path("garbage.pem")), private_key: \(material.path("garbage.pem")), client_ca: \(material.path("nothing.pem"))}")
        #expect(garbage.status == 1 && garbage.output.contains("no PEM certificate") && garbage.output.contains("not a readable PEM private key"))
        #expect(garbage.output.contains("tls.client_ca") && garbage.output.contains("has 3 errors"), "\(garbage.output)")

        let outbound = try await DaemonProcess.run(["check", "--config", try material.config("""
            routes: [{path: /e, handler: echo}]
            outbound: [{url: 'wss://127.0.0.1:1/', socket_id: up, tls: {ca_file: \(material.path("old.pem")), certificate: \(material.path("good.pem")), private_key: \(material.path("other.key"))}}]
            """)])
        #expect(outbound.output.contains("outbound[0].tls.ca_file") && outbound.output.contains("outbound[0].tls.private_key"), "\(outbound.output)")
    }

    @Test func serveNamesTheFileAndTheKey() async throws {
        let material = try Material()
        let file = try material.config("""
            listen: 127.0.0.1:0
            admin: {listen: 127.0.0.1:0}
            tls: {certificate: \(material.path("old.pem")), private_key: \(material.path("old.key"))}
            routes: [{path: /e, handler: echo}]
            """)
        let (status, output) = try await DaemonProcess.run(["--config", file])
        #expect(status == 1)
        #expect(output.contains("wsgate: \(file): config error at tls.certificate") && output.contains("expired on"), "\(output)")
        #expect(!output.contains("Fatal error") && !output.contains(".swift:"))
    }

    @Test func theLibraryCollectsWhatTheCommandPrints() throws {
        let result = DaemonConfiguration.check(yaml: "limits: {idle_timeout: x, close_timeout: y}\nroutes: [{path: /e, handler: echo}]", environment: [:])
        #expect(result.configuration == nil)
        #expect(result.errors.map(\.key) == ["limits.idle_timeout", "limits.close_timeout"])
        let valid = DaemonConfiguration.check(yaml: "routes: [{path: /e, handler: echo}]", environment: [:])
        #expect(valid.configuration != nil && valid.errors.isEmpty)
    }
}
