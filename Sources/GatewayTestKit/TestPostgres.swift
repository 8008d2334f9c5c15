import Foundation

/// The PostgreSQL servers of the tests, started by `scripts/postgres.sh` (which installs PostgreSQL when needed):
/// the shared one, or one of a test's own (another port) for tests that restart it.
public struct TestPostgres: Sendable {
    /// The server's port.
    public let port: Int

    /// The shared server (port 55432, or `WSGATE_TEST_POSTGRES_PORT`).
    public static let shared = TestPostgres(port: ProcessInfo.processInfo.environment["WSGATE_TEST_POSTGRES_PORT"].flatMap(Int.init) ?? 55432)

    /// A server on `port`, for a test that stops or restarts it.
    public init(port: Int) {
        self.port = port
    }

    /// Starts the server when it is not running; returns its URL (`postgres://wsgate:wsgate@127.0.0.1:PORT/wsgate`).
    @discardableResult
    public func start() throws -> String {
        let url = try self.script("start")
        guard url.hasPrefix("postgres://") else { throw Failure(message: "scripts/postgres.sh start printed: \(url)") }
        return url
    }

    /// Restarts the server, keeping its data (an outage of about a second).
    public func restart() throws { try self.script("restart") }

    /// Stops the server and removes its data.
    public func stop() throws { try self.script("stop") }

    /// The URL of the shared server, started on first use, with `sslmode=disable`.
    public static let sharedURL: String = ((try? shared.start()) ?? "postgres://wsgate:wsgate@127.0.0.1:55432/wsgate") + "?sslmode=disable"

    /// A schema name no other test uses.
    public static func freshSchema() -> String {
        "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { self.message }
    }

    /// Runs `scripts/postgres.sh COMMAND`; returns what it printed once it closed its output (it has then ended).
    /// Neither `waitUntilExit()` nor a termination handler is used: with many processes ending at once,
    /// Foundation on Linux was seen to miss this one's exit and spin in `waitUntilExit()` for good.
    @discardableResult
    private func script(_ command: String) throws -> String {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("scripts/postgres.sh").path, command]
        process.environment = ProcessInfo.processInfo.environment.merging(["WSGATE_PG_PORT": String(self.port)]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // Every command ends by printing its result (`start`: the URL) or nothing; a failure prints "failed".
        guard !text.contains("failed") else { throw Failure(message: "scripts/postgres.sh \(command): \(text)") }
        return text
    }
}
