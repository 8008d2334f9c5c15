import Foundation
import NIOHTTP1
import GatewayDaemon
import Testing

@Suite("wsgate connect against the real daemon", .serialized)
struct ConnectCommandTests {
    /// The embedded default's routes, on free ports.
    static let config = DefaultConfiguration.routes

    @Test func echoesStdinLinesAndClosesNormallyAtEndOfInput() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let client = try ConnectProcess(["ws://127.0.0.1:\(daemon.webSocketPort)/echo"])
        client.send("hello\n")
        // The first echo arrives while stdin is still open: lines are sent as they come.
        #expect(await client.wait(for: "hello\n"))
        client.send("wörld\n")
        client.closeInput()
        #expect(await client.exitStatus() == 0)
        #expect(client.stdout == "hello\nwörld\n")
        #expect(client.stderr.contains("connected (subprotocol: none)"))
        #expect(await daemon.stop() == 0)
    }

    @Test func aRefusedHandshakeExitsWith2AndShowsTheStatus() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let client = try ConnectProcess(["ws://127.0.0.1:\(daemon.webSocketPort)/nowhere", "--handshake-timeout", "5"])
        #expect(await client.exitStatus() == 2)
        #expect(client.stderr.contains("404"), "\(client.stderr)")
        #expect(!client.stderr.contains("connected"))
        client.closeInput()
        #expect(await daemon.stop() == 0)
    }

    @Test func aServerCloseWithAnotherCodeExitsWith1() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let client = try ConnectProcess(["ws://127.0.0.1:\(daemon.webSocketPort)/echo", "-H", "X-Test: yes"])
        client.send("ready\n")
        #expect(await client.wait(for: "ready\n"))
        let listed = try await daemon.admin(.GET, "/v1/connections?path=/echo")
        let ids = DaemonProcess.json(listed.body)["connections"] as? [String] ?? []
        try #require(ids.count == 1)
        let closed = try await daemon.admin(.DELETE, "/v1/connections/\(ids[0])?code=4000&reason=bye")
        #expect(closed.status == 204)
        #expect(await client.exitStatus() == 1)
        #expect(client.stderr.contains("closed: 4000 bye"), "\(client.stderr)")
        client.closeInput()
        #expect(await daemon.stop() == 0)
    }

    @Test func binaryMessagesPrintAsBase64AndADroppedConnectionExitsWith3() async throws {
        let daemon = try await DaemonProcess(yaml: Self.config)
        let client = try ConnectProcess(["ws://127.0.0.1:\(daemon.webSocketPort)/chat/room", "--binary"])
        client.send("ready\n")
        #expect(await client.wait(for: "ready\n"))
        let ids = DaemonProcess.json(try await daemon.admin(.GET, "/v1/connections").body)["connections"] as? [String] ?? []
        try #require(ids.count == 1)
        let sent = try await daemon.admin(.POST, "/v1/connections/\(ids[0])/messages", body: #"{"message": "AAEC/w==", "type": "data-binary"}"#)
        #expect(sent.status == 204)
        #expect(await client.wait(for: "AAEC/w==\n"))
        // The server dies without a closing handshake: 1006, exit status 3.
        await daemon.kill()
        #expect(await client.exitStatus() == 3)
        client.closeInput()
    }
}

/// `wsgate connect` as a child process, with pipes on its stdin, stdout and stderr. Every wait is bounded.
final class ConnectProcess: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()
    private let lock = NSLock()
    private var outputText = Data()
    private var errorText = Data()
    private var watchers: [UUID: AsyncStream<Void>.Continuation] = [:]
    private let exit: AsyncStream<Int32>

    init(_ arguments: [String]) throws {
        self.process.executableURL = DaemonProcess.binary
        self.process.arguments = ["connect"] + arguments
        self.process.standardInput = self.input
        self.process.standardOutput = self.output
        self.process.standardError = self.errors
        let (exit, exited) = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .bufferingNewest(1))
        self.exit = exit
        self.process.terminationHandler = { process in
            exited.yield(process.terminationStatus)
            exited.finish()
        }
        self.output.fileHandleForReading.readabilityHandler = { [weak self] handle in self?.received(handle, isError: false) }
        self.errors.fileHandleForReading.readabilityHandler = { [weak self] handle in self?.received(handle, isError: true) }
        try self.process.run()
    }

    private func received(_ handle: FileHandle, isError: Bool) {
        let data = handle.availableData
        if data.isEmpty { handle.readabilityHandler = nil }
        let watchers = self.lock.withLock {
            if isError { self.errorText += data } else { self.outputText += data }
            return Array(self.watchers.values)
        }
        for watcher in watchers { watcher.yield() }
    }

    /// What the process wrote to stdout so far.
    var stdout: String { self.lock.withLock { String(decoding: self.outputText, as: UTF8.self) } }
    /// What the process wrote to stderr so far.
    var stderr: String { self.lock.withLock { String(decoding: self.errorText, as: UTF8.self) } }

    /// Writes to the process's stdin.
    func send(_ text: String) {
        self.input.fileHandleForWriting.write(Data(text.utf8))
    }

    /// Closes the process's stdin (end of input).
    func closeInput() {
        try? self.input.fileHandleForWriting.close()
    }

    /// Waits until stdout contains `text`; false when `timeout` passes first.
    func wait(for text: String, timeout: Duration = .seconds(10)) async -> Bool {
        let (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        self.lock.withLock { self.watchers[id] = continuation }
        continuation.yield()
        defer {
            _ = self.lock.withLock { self.watchers.removeValue(forKey: id) }
            continuation.finish()
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in changes where self.stdout.contains(text) { return true }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Waits for the process to exit and returns its status; after `timeout` it is terminated and `nil` returned.
    func exitStatus(timeout: Duration = .seconds(15)) async -> Int32? {
        let status = await withTaskGroup(of: Int32?.self) { group in
            group.addTask {
                for await status in self.exit { return status }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if status == nil, self.process.isRunning {
            Issue.record("wsgate connect did not exit within \(timeout); stderr: \(self.stderr)")
            self.process.terminate()
        }
        // Let the last output arrive: the pipes reach end of file once the process is gone.
        await self.drain()
        return status
    }

    /// Reads what is left in the pipes after the process ended.
    private func drain() async {
        for pipe in [self.output, self.errors] {
            pipe.fileHandleForReading.readabilityHandler = nil
            let rest = (try? pipe.fileHandleForReading.readToEnd()) ?? nil
            if let rest, !rest.isEmpty {
                self.lock.withLock {
                    if pipe === self.errors { self.errorText += rest } else { self.outputText += rest }
                }
            }
        }
    }
}
