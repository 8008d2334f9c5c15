import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import WebSocketEngine

/// `wsgate connect URL`: a small interactive client in the spirit of wscat. Lines read from stdin go out as text
/// messages; received messages are printed to stdout, one per line; at the end of stdin the client closes with
/// 1000 and waits for the closing handshake.
struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to a WebSocket server: stdin lines are sent as text messages, received messages printed.",
        discussion: """
            Exit status: 0 when the connection closed with 1000 or 1001; 1 when the server closed with another code \
            (printed as `closed: CODE REASON` on stderr); 2 when connecting or the opening handshake failed; 3 when \
            the connection ended without a close frame (1006).
            """
    )

    @Argument(help: "The ws:// or wss:// URL.") var url: String
    @Option(name: [.customShort("H"), .long], help: "A request header, \"Name: value\" (repeatable).") var header: [String] = []
    @Option(help: "A subprotocol to offer (repeatable, in order of preference).") var subprotocol: [String] = []
    @Flag(help: "Print binary messages as base64 (otherwise as <binary N bytes>).") var binary = false
    @Flag(help: "Accept any server certificate, without verification.") var insecure = false
    @Option(name: .customLong("ca-file"), help: "Trust the CA certificates of this PEM file instead of the system's.") var caFile: String?
    @Option(help: "A PEM certificate chain to present to servers that require one (mutual TLS); needs --key.") var cert: String?
    @Option(help: "The PEM private key of --cert.") var key: String?
    @Option(help: "An HTTP CONNECT proxy: http://[user:password@]host:port.") var proxy: String?
    @Option(help: "How many redirects to follow (0: a redirect is an error).") var maxRedirects = 0
    @Option(help: "Seconds that connecting and the opening handshake may take.") var handshakeTimeout: Double = 10

    /// How many stdin lines may wait, read but not yet sent.
    private static let bufferedLines = 16

    func validate() throws {
        for header in self.header where Self.parse(header: header) == nil {
            throw ValidationError("--header '\(header)' is not \"Name: value\"")
        }
        guard (self.cert == nil) == (self.key == nil) else {
            throw ValidationError(self.cert == nil ? "--key needs --cert (the certificate of the key)" : "--cert needs --key (its private key)")
        }
        guard self.maxRedirects >= 0 else { throw ValidationError("--max-redirects must be 0 or more") }
        guard self.handshakeTimeout > 0, self.handshakeTimeout < 86_400 else {
            throw ValidationError("--handshake-timeout must be between 0 and 86400 seconds")
        }
    }

    func run() async throws {
        let socket: WebSocket
        do {
            socket = try await WebSocketClient.connect(to: self.url, configuration: try self.clientConfiguration())
        } catch {
            FileHandleOutput.error("wsgate connect: \(ConnectFailure(error, url: self.url, timeout: self.handshakeTimeout))")
            throw ExitCode(2)
        }
        FileHandleOutput.error("connected (subprotocol: \(socket.subprotocol ?? "none"))")
        let info = await self.session(socket)
        switch info.code {
        case .normalClosure, .goingAway:
            return
        case .abnormalClosure:
            FileHandleOutput.error("closed: 1006 the connection ended without a close frame")
            throw ExitCode(3)
        default:
            FileHandleOutput.error("closed: \(info.code.rawValue) \(info.reason)")
            throw ExitCode(1)
        }
    }

    private func clientConfiguration() throws -> WebSocketClientConfiguration {
        // Files are checked first, so that a missing or mismatched one is named rather than failing the handshake.
        if let caFile = self.caFile { _ = try TLSMaterial.certificates(file: caFile) }
        if let cert = self.cert, let key = self.key { try TLSMaterial.checkIdentity(certificateFile: cert, keyFile: key) }
        var tls = try TLSConfiguration.webSocketClient(caFile: self.caFile, certificateChainFile: self.cert, privateKeyFile: self.key)
        if self.insecure { tls.certificateVerification = .none }
        var headers = HTTPHeaders()
        for (name, value) in self.header.compactMap(Self.parse(header:)) { headers.add(name: name, value: value) }
        return WebSocketClientConfiguration(
            headers: headers,
            subprotocols: self.subprotocol,
            handshakeTimeout: .nanoseconds(Int64(self.handshakeTimeout * 1_000_000_000)),
            tls: tls,
            proxy: try self.proxy.map { try WebSocketProxy(url: $0) },
            maxRedirects: self.maxRedirects)
    }

    /// Sends stdin and prints what arrives until the connection closes; returns how it closed.
    private func session(_ socket: WebSocket) async -> WebSocketCloseInfo {
        let lines = StandardInputLines(buffered: Self.bufferedLines)
        let printBinary = self.binary
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await line in lines.stream {
                    lines.consumed()
                    do { try await socket.send(text: line) } catch { return }
                }
                // End of stdin (not a cancelled task): begin the closing handshake; the loop below sees its end.
                if !Task.isCancelled { socket.startClose(code: .normalClosure) }
            }
            var info = WebSocketCloseInfo(code: .abnormalClosure, initiatedLocally: false)
            for await event in socket.events {
                switch event {
                case .text(let text):
                    StandardOutput.line(text)
                case .binary(let buffer):
                    let bytes = Data(buffer.readableBytesView)
                    StandardOutput.line(printBinary ? bytes.base64EncodedString() : "<binary \(bytes.count) bytes>")
                case .close(let closeInfo):
                    info = closeInfo
                case .ping, .pong, .idleTimeout, .error:
                    break
                }
            }
            group.cancelAll()
            return info
        }
    }

    private static func parse(header: String) -> (String, String)? {
        guard let colon = header.firstIndex(of: ":") else { return nil }
        let name = header[..<colon].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, !name.contains(where: { $0.isWhitespace }) else { return nil }
        return (name, header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
}

/// The lines of stdin as an `AsyncStream`, read by a thread of its own because reading blocks. The thread reads
/// ahead at most `buffered` lines: each line taken from the stream lets it read one more.
private final class StandardInputLines: Sendable {
    let stream: AsyncStream<String>
    private let credits: DispatchSemaphore

    init(buffered: Int) {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        // Created at 0 and signalled up: libdispatch traps when a semaphore is freed below its initial value,
        // which is where this one is when stdin ends before every line was consumed.
        let credits = DispatchSemaphore(value: 0)
        for _ in 0..<buffered { credits.signal() }
        self.stream = stream
        self.credits = credits
        let thread = Thread {
            while true {
                credits.wait()
                guard let line = readLine(strippingNewline: true) else { break }
                continuation.yield(line)
            }
            continuation.finish()
        }
        thread.start()
    }

    /// A line was taken from the stream.
    func consumed() { self.credits.signal() }
}

/// Unbuffered writes to stdout, so that a reader sees each message as it arrives.
private enum StandardOutput {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}
