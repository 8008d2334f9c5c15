import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import WebSocketTestKit

/// The real `wsgate` binary, started with a config file, for end-to-end tests.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let directory: URL
    private(set) var webSocketPort = 0
    private(set) var adminPort = 0
    /// What the daemon printed at start (listeners, routes, the management API).
    private(set) var banner = ""
    private let output = Pipe()
    private let errors = Pipe()
    /// The daemon's log lines (its standard error), as they come.
    let logLines = TestMailbox<String>()
    /// Its last log lines, printed when it ends unexpectedly.
    private let recentLog = NIOLockedValueBox<[String]>([])
    /// Every log line, and whether the log has ended (see ``wholeLog()``).
    private let everyLine = NIOLockedValueBox<(lines: [String], ended: Bool)>(([], false))

    /// The built binary: `WSGATE_BINARY`, or `.build/debug/wsgate` of this package.
    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["WSGATE_BINARY"] { return URL(fileURLWithPath: path) }
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        return root.appendingPathComponent(".build/debug/wsgate")
    }

    /// Starts `wsgate` with `yaml` (listeners on free loopback ports unless it sets them, see ``DaemonFixture``)
    /// and waits for its banner.
    /// With `openFileLimit`, the daemon runs under `ulimit -n` of that many descriptors (soft and hard).
    init(yaml: String, environment: [String: String] = [:], arguments: [String] = [], openFileLimit: Int? = nil) async throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("wsgate-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let file = self.directory.appendingPathComponent("wsgate.yaml")
        try DaemonFixture.complete(yaml).write(to: file, atomically: true, encoding: .utf8)
        if let openFileLimit {
            self.process.executableURL = URL(fileURLWithPath: "/bin/sh")
            self.process.arguments = ["-c", "ulimit -n \(openFileLimit) && exec \"$0\" \"$@\"", Self.binary.path, "--config", file.path] + arguments
        } else {
            self.process.executableURL = Self.binary
            self.process.arguments = ["--config", file.path] + arguments
        }
        self.process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        self.process.standardOutput = self.output
        self.process.standardError = self.errors
        try self.process.run()
        let handle = self.output.fileHandleForReading
        let banner: String = await onOwnThread {
            var text = ""
            while !text.contains("management API on") {
                let data = handle.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
            return text
        }
        self.readLog()
        self.banner = banner
        self.webSocketPort = Self.port(after: "listener on ", in: banner)
        self.adminPort = Self.port(after: "management API on http://", in: banner)
        guard self.webSocketPort > 0, self.adminPort > 0 else {
            self.process.terminate()
            let log = (try? await within(2, "the log") { await self.logLines.take() ?? "" }) ?? ""
            throw DaemonError(message: "wsgate did not start: \(banner)\(log)")
        }
    }

    /// Reads standard error line by line into ``logLines`` on a thread of its own (FileHandle reads block).
    private func readLog() {
        let handle = self.errors.fileHandleForReading
        let lines = self.logLines
        let recent = self.recentLog
        let every = self.everyLine
        Thread.detachNewThread {
            defer { every.withLockedValue { $0.ended = true } }
            var pending = Data()
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                pending.append(data)
                while let end = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<end], as: UTF8.self)
                    lines.put(line)
                    recent.withLockedValue { $0 = $0.suffix(39) + [line] }
                    every.withLockedValue { $0.lines.append(line) }
                    pending.removeSubrange(pending.startIndex...end)
                }
            }
        }
    }

    /// Every line the daemon logged, once its log has ended (call after ``stop()``; fails after 10 s).
    func wholeLog() async throws -> [String] {
        try await within(10, "the end of the log") {
            while true {
                let (lines, ended) = self.everyLine.withLockedValue { $0 }
                if ended { return lines }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    /// The next log line that contains `text` (earlier lines are skipped); fails after `seconds`.
    func logLine(containing text: String, seconds: Double = 10) async throws -> String {
        try await within(seconds, "a log line with '\(text)'") {
            while let line = await self.logLines.take() {
                if line.contains(text) { return line }
            }
            throw TimedOut(what: "a log line with '\(text)' (the log ended)")
        }
    }

    struct DaemonError: Error, CustomStringConvertible {
        var message: String
        var description: String { self.message }
    }

    private static func port(after marker: String, in text: String) -> Int {
        guard let range = text.range(of: marker) else { return 0 }
        let rest = text[range.upperBound...]
        let address = rest.prefix { !$0.isWhitespace }
        return Int(address.split(separator: ":").last ?? "") ?? 0
    }

    /// A daemon whose test ended early (a failed expectation, a thrown error) is not left running.
    deinit {
        if self.process.isRunning { self.process.terminate() }
    }

    /// Sends SIGTERM and waits for the exit status. A daemon that had ended by itself, or that does not exit with
    /// status 0, has its last log lines printed: a test's failure then says why.
    @discardableResult
    func stop() async -> Int32 {
        let wasRunning = self.process.isRunning
        if wasRunning { self.process.terminate() }
        return await self.waitForExit(wasRunning: wasRunning, expectsZero: true)
    }

    /// Kills the process with SIGKILL (no closing handshakes: its peers see their connections drop) and waits.
    func kill() async {
        let wasRunning = self.process.isRunning
        if wasRunning { Foundation.kill(self.process.processIdentifier, SIGKILL) }
        await self.waitForExit(wasRunning: wasRunning, expectsZero: false)
    }

    /// Waits for the exit; prints the last log lines when the daemon had ended by itself, or when `expectsZero`
    /// and its status is not 0.
    @discardableResult
    private func waitForExit(wasRunning: Bool, expectsZero: Bool) async -> Int32 {
        await onOwnThread { self.process.waitUntilExit() }
        try? FileManager.default.removeItem(at: self.directory)
        let status = self.process.terminationStatus
        if !wasRunning || (expectsZero && status != 0) {
            let log = self.recentLog.withLockedValue { $0 }.joined(separator: "\n")
            let how = self.process.terminationReason == .uncaughtSignal ? "signal" : "status"
            let when = wasRunning ? "after it was stopped" : "by itself, before it was stopped"
            FileHandle.standardError.write(Data(
                "wsgate (pid \(self.process.processIdentifier)) ended with \(how) \(status) \(when); its last log lines:\n\(log)\n".utf8))
        }
        return status
    }

    /// Sends an upgrade request for `path` with `headers` to the WebSocket listener; returns the raw answer: its
    /// head, and for a refusal (which the server closes) its body. With `open`, stops at the end of the head.
    func upgrade(_ path: String, headers: String = "Host: 127.0.0.1", open: Bool = false) async throws -> String {
        let request = "GET \(path) HTTP/1.1\r\n\(headers)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        return try await within(10, "an answer to \(path)") {
            try await RawTCP.exchange(port: self.webSocketPort, send: request, until: open ? "\r\n\r\n" : nil)
        }
    }

    /// The value of one Prometheus series (`name{labels}`) at `/metrics`; 0 when it is not there.
    func metric(_ series: String) async throws -> Double {
        let (_, text) = try await self.admin(.GET, "/metrics")
        let line = text.split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    /// Calls the management API; returns status and body.
    func admin(_ method: HTTPMethod, _ path: String, body: String? = nil, token: String? = nil) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(self.adminPort)\(path)")
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), text)
    }

    /// Sends `request` (an HTTP/1.1 head, `Connection: close` is added, and an optional body) to the management
    /// API byte for byte, for headers no well-behaved client sends; returns the status, the JSON answer and the
    /// response's text.
    func rawAdmin(_ head: String, body: String = "") async throws -> (status: Int, json: [String: Any], text: String) {
        let request = head + "\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        let text = try await within(10, "an answer to \(head)") { try await RawTCP.exchange(port: self.adminPort, send: request) }
        let status = Int(text.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") ?? 0
        let json = text.range(of: "\r\n\r\n").map { Self.json(String(text[$0.upperBound...])) } ?? [:]
        return (status, json, text)
    }

    /// Runs the wsgate binary with `arguments` to its end; its status and output (standard output and error).
    static func run(_ arguments: [String], environment: [String: String] = ["TEST_TOKEN": "x"]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = DaemonProcess.binary
        process.arguments = arguments
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = await onOwnThread {
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return output
        }
        return (process.terminationStatus, output)
    }

    /// Parses a JSON object answer.
    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }
}
