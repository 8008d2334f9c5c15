import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
@testable import WebSocketEngine
import WebSocketTestKit

@Suite("Handshake errors and TLS over loopback")
struct HandshakeLoopbackTests {
    static let routes: @Sendable (WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision = { request in
        guard request.path == "/ws" else {
            return .reject(.init(status: .notFound, reason: "no route for \(request.path)"))
        }
        return await echoUpgrade(request)
    }

    /// Sends a raw request and splits the answer into status line, headers and body.
    private func answer(_ port: Int, _ request: String) async throws -> (status: String, headers: String, body: String) {
        let reply = try await RawTCP.exchange(port: port, send: request)
        let parts = reply.components(separatedBy: "\r\n\r\n")
        let head = parts[0].components(separatedBy: "\r\n")
        return (head[0], head.dropFirst().joined(separator: "\n").lowercased(), parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    @Test func answersEachBadUpgradeWithAStatusAndAReasonThenCloses() async throws {
        var configuration = WebSocketServerConfiguration()
        configuration.requestLimits = .init(maxURILength: 100, maxHeaderBytes: 2048)
        try await withServer(configuration, onUpgrade: Self.routes) { port in
            var result = try await self.answer(port, upgradeRequest(path: "/ws", dropping: ["Sec-WebSocket-Version"]))
            #expect(result.status == "HTTP/1.1 400 Bad Request" && result.body == "missing Sec-WebSocket-Version\n")
            result = try await self.answer(port, upgradeRequest(path: "/ws", headers: [("Sec-WebSocket-Version", "8")]))
            #expect(result.status == "HTTP/1.1 426 Upgrade Required" && result.headers.contains("sec-websocket-version: 13"))
            result = try await self.answer(port, upgradeRequest(path: "/ws", headers: [("Sec-WebSocket-Key", "not-base64!")]))
            #expect(result.status == "HTTP/1.1 400 Bad Request" && result.body == "malformed Sec-WebSocket-Key: must be base64 of 16 bytes\n")
            result = try await self.answer(port, upgradeRequest(path: "/ws", dropping: ["Sec-WebSocket-Key"]))
            #expect(result.body == "missing Sec-WebSocket-Key\n")
            result = try await self.answer(port, upgradeRequest(path: "/ws", method: "POST", headers: [("Content-Length", "0")]))
            #expect(result.status == "HTTP/1.1 405 Method Not Allowed" && result.headers.contains("allow: get"))
            result = try await self.answer(port, upgradeRequest(path: "/nowhere"))
            #expect(result.status == "HTTP/1.1 404 Not Found" && result.body == "no route for /nowhere\n")
            result = try await self.answer(port, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(result.status == "HTTP/1.1 426 Upgrade Required" && result.headers.contains("upgrade: websocket"))
            result = try await self.answer(port, upgradeRequest(path: "/" + String(repeating: "a", count: 200)))
            #expect(result.status == "HTTP/1.1 414 URI Too Long")
            result = try await self.answer(port, upgradeRequest(path: "/ws", headers: [("X-Padding", String(repeating: "p", count: 4000))]))
            #expect(result.status == "HTTP/1.1 431 Request Header Fields Too Large")
            result = try await self.answer(port, "NOT HTTP AT ALL\r\n\r\n")
            #expect(result.status == "HTTP/1.1 400 Bad Request")
            result = try await self.answer(port, upgradeRequest(path: "/ws", headers: [("X-Huge", String(repeating: "h", count: 100_000))]))
            #expect(result.status == "HTTP/1.1 431 Request Header Fields Too Large")
        }
    }

    @Test func theUpgradeHookCanRejectWithHeaders() async throws {
        try await withServer(onUpgrade: { _ in
            .reject(.init(status: .unauthorized, reason: "token required", headers: ["WWW-Authenticate": "Bearer"]))
        }) { port in
            do {
                _ = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/private")
                Issue.record("the connection should have been refused")
            } catch let error as WebSocketClientError {
                #expect(error.kind == .unexpectedStatus)
                #expect(error.status == .unauthorized)
                #expect(error.responseHeaders?["www-authenticate"] == ["Bearer"])
                #expect(error.responseBody.map { String(buffer: $0) } == "token required\n")
            }
        }
    }

    @Test func theUpgradeHookIsBoundedByTheHandshakeTimeout() async throws {
        var configuration = WebSocketServerConfiguration()
        // Long enough that the request has surely arrived when it runs out, even with every suite running at
        // once (a timeout before the request arrives answers 408 instead).
        configuration.handshakeTimeout = .seconds(5)
        try await withServer(configuration, onUpgrade: { _ in
            try? await Task.sleep(for: .seconds(30))
            return .reject(.init(status: .unauthorized, reason: "too late"))
        }) { port in
            // Read up to the end of the head only: the server closes right after its answer. On a machine so
            // loaded that the request was not read within the timeout, the answer is 408 (the request timed out,
            // not the hook): that attempt proves nothing and is made again.
            var slow = ""
            for _ in 0..<3 {
                slow = try await RawTCP.exchange(port: port, send: upgradeRequest(path: "/slow"), until: "\r\n\r\n")
                if !slow.hasPrefix("HTTP/1.1 408") { break }
            }
            #expect(slow.hasPrefix("HTTP/1.1 503 Service Unavailable"), "\(slow)")
        }
    }

    @Test func clientRejectsEachBadAnswer() async throws {
        let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        let cases: [(String, WebSocketClientError.Kind)] = [
            ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n", .missingUpgradeHeader),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\n", .missingConnectionHeader),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n\r\n", .invalidAccept),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", .invalidAccept),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: never-offered\r\n\r\n", .unexpectedSubprotocol),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", .invalidExtensions),
            ("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 5\r\n\r\nmoved", .unexpectedStatus),
        ]
        for (template, kind) in cases {
            let server = try await CannedResponseServer.start { request in
                let key = request.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("sec-websocket-key:") }!
                    .dropFirst("sec-websocket-key:".count).trimmingCharacters(in: .whitespaces)
                return template.replacingOccurrences(of: "{accept}", with: acceptValue(key))
            }
            do {
                _ = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(server.port)/")
                Issue.record("expected \(kind)")
            } catch let error as WebSocketClientError {
                #expect(error.kind == kind, "\(error)")
                if kind == .unexpectedStatus {
                    #expect(error.status == .found && error.responseBody.map { String(buffer: $0) } == "moved")
                }
            }
            try await server.close()
        }
    }

    @Test func clientHandshakeTimesOut() async throws {
        let silent = try await CannedResponseServer.start(closeAfterResponse: false) { _ in "" }
        await #expect(throws: WebSocketClientError.self) {
            _ = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(silent.port)/", configuration: .init(handshakeTimeout: .milliseconds(200)))
        }
        try await silent.close()
    }

    @Test func clientReportsAnInvalidURL() async throws {
        await #expect(throws: WebSocketClientError.self) { _ = try await WebSocketClient.connect(to: "http://127.0.0.1/") }
    }

    @Test func secureEchoWithServerNameVerification() async throws {
        let authority = try TestCertificateAuthority()
        let serverIdentity = try authority.issue(commonName: "localhost")
        var configuration = WebSocketServerConfiguration()
        configuration.tls = authority.serverTLS(serverIdentity)
        try await withServer(configuration, onUpgrade: echoUpgrade) { port in
            let client = WebSocketClientConfiguration(tls: authority.clientTLS(), serverName: "localhost")
            let socket = try await WebSocketClient.connect(to: "wss://127.0.0.1:\(port)/", configuration: client)
            #expect(socket.isSecure)
            try await socket.send(text: "over TLS")
            #expect(try await socket.receive() == .text("over TLS"))
            try await socket.close()
            // The wrong name fails verification.
            let wrongName = WebSocketClientConfiguration(tls: authority.clientTLS(), serverName: "example.org")
            await #expect(throws: (any Error).self) {
                _ = try await WebSocketClient.connect(to: "wss://127.0.0.1:\(port)/", configuration: wrongName)
            }
            // A client that does not trust the CA fails too.
            await #expect(throws: (any Error).self) {
                _ = try await WebSocketClient.connect(to: "wss://127.0.0.1:\(port)/", configuration: .init(serverName: "localhost"))
            }
        }
    }

    @Test func tlsFromPEMFiles() async throws {
        let authority = try TestCertificateAuthority()
        let server = try authority.issue(commonName: "localhost")
        let client = try authority.issue(commonName: "pem-client")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-tls-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func write(_ name: String, _ text: String) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        var configuration = WebSocketServerConfiguration()
        configuration.tls = try .webSocketServer(
            certificateChainFile: write("server.pem", server.certificatePEM), privateKeyFile: write("server.key", server.privateKeyPEM),
            clientCAFile: write("ca.pem", authority.certificatePEM), requireClientCertificate: true)
        let tls = try TLSConfiguration.webSocketClient(
            caFile: write("ca2.pem", authority.certificatePEM), certificateChainFile: write("client.pem", client.certificatePEM),
            privateKeyFile: write("client.key", client.privateKeyPEM))
        try await withServer(configuration, onUpgrade: echoUpgrade) { port in
            let socket = try await WebSocketClient.connect(to: "wss://127.0.0.1:\(port)/", configuration: .init(tls: tls, serverName: "localhost"))
            try await socket.send(text: "from files")
            #expect(try await socket.receive() == .text("from files"))
            try await socket.close()
        }
    }

    @Test func mutualTLSShowsTheClientCertificateSubject() async throws {
        let authority = try TestCertificateAuthority()
        let serverIdentity = try authority.issue(commonName: "localhost")
        let clientIdentity = try authority.issue(commonName: "device-42")
        var configuration = WebSocketServerConfiguration()
        configuration.tls = authority.serverTLS(serverIdentity, requireClientCertificate: true)
        let subjects = Mailbox<String?>()
        try await withServer(configuration, onUpgrade: { request in
            subjects.put(request.clientCertificateSubject)
            return await echoUpgrade(request)
        }) { port in
            let client = WebSocketClientConfiguration(tls: authority.clientTLS(presenting: clientIdentity), serverName: "localhost")
            let socket = try await WebSocketClient.connect(to: "wss://127.0.0.1:\(port)/", configuration: client)
            #expect(await subjects.take() == clientIdentity.subject)
            try await socket.send(text: "mutual")
            #expect(try await socket.receive() == .text("mutual"))
            try await socket.close()
            await #expect(throws: (any Error).self) {
                let anonymous = try await WebSocketClient.connect(
                    to: "wss://127.0.0.1:\(port)/", configuration: .init(tls: authority.clientTLS(), serverName: "localhost"))
                _ = try await anonymous.receive()
            }
        }
    }
}

private func acceptValue(_ key: String) -> String {
    HandshakeRules.acceptValue(forKey: key)
}
