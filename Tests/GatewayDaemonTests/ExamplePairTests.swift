import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import WebSocketEngine
import WebSocketTestKit

/// `examples/webhook.yaml` with `examples/webhook_backend.py`, as the README tells a newcomer to run them (on free
/// ports instead of 8080, 9090 and 3000): the pair works word for word.
@Suite("wsgate daemon end to end: the webhook example pair", .serialized)
struct ExamplePairTests {
    @Test func theExampleBackendAnswersTheExampleGateway() async throws {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let port = try await Self.freePort()
        let backend = Process()
        backend.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        backend.arguments = ["python3", root.appendingPathComponent("examples/webhook_backend.py").path, "--port", "\(port)"]
        backend.environment = ["HOOK_SECRET": "shared", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        backend.standardOutput = FileHandle.nullDevice
        backend.standardError = FileHandle.nullDevice
        try backend.run()
        defer { backend.terminate() }
        let example = try String(contentsOf: root.appendingPathComponent("examples/webhook.yaml"), encoding: .utf8)
        let yaml = example.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("listen:") }
            .map { $0.hasPrefix("admin:") ? "admin: {listen: 127.0.0.1:0, token: \"${WSGATE_ADMIN_TOKEN}\"}" : String($0) }
            .joined(separator: "\n")
            .replacingOccurrences(of: "127.0.0.1:3000", with: "127.0.0.1:\(port)")
        let daemon = try await DaemonProcess(yaml: yaml, environment: ["WSGATE_ADMIN_TOKEN": "secret-token-0123456789", "HOOK_SECRET": "shared"])
        let url = "ws://127.0.0.1:\(daemon.webSocketPort)/devices"
        // The backend starts beside the daemon: the first devices may find it not listening yet (502).
        let device = try await within(20, "the example backend to answer") {
            while true {
                if let socket = try? await WebSocketClient.connect(to: "\(url)/7") { return socket }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        try await device.send(text: "ping")
        #expect(try await device.receive() == .text("pong"))
        let other = try await WebSocketClient.connect(to: "\(url)/8")
        try await device.send(text: "alert")
        let alert = try await other.receive()
        guard case .text(let text)? = alert else {
            Issue.record("expected the alert, got \(String(describing: alert))")
            return
        }
        #expect(text.hasPrefix("alert from "))
        do {
            _ = try await WebSocketClient.connect(to: "\(url)/blocked")
            Issue.record("expected a refusal")
        } catch let error as WebSocketClientError {
            #expect(error.status == .forbidden && error.responseBody.map { String(buffer: $0) } == "this device is blocked\n")
        }
        try await device.close()
        try await other.close()
        #expect(await daemon.stop() == 0)
    }

    /// A port nothing listens on right now (bound, read and released).
    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}
