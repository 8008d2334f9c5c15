import NIOCore
import NIOHTTP1
import WebSocketEngine
import WebSocketTestKit

/// Runs a server on a free loopback port for the duration of `body`.
func withServer<T: Sendable>(
    _ configuration: WebSocketServerConfiguration = .init(port: 0),
    onUpgrade: @escaping @Sendable (WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision,
    _ body: (Int) async throws -> T
) async throws -> T {
    var configuration = configuration
    configuration.host = "127.0.0.1"
    configuration.port = 0
    let server = try await WebSocketServer.bind(configuration: configuration, onUpgrade: onUpgrade)
    let port = server.localAddress!.port!
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await server.run() }
        do {
            let result = try await body(port)
            await server.shutdown()
            try await group.waitForAll()
            return result
        } catch {
            await server.shutdown()
            try await group.waitForAll()
            throw error
        }
    }
}

/// Accepts every upgrade and echoes every message.
let echoUpgrade: @Sendable (WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision = { _ in
    .accept(WebSocketAcceptance { socket in
        while let message = try await socket.receive() {
            try await socket.send(message)
        }
    })
}

/// An upgrade request as raw text.
func upgradeRequest(path: String = "/", method: String = "GET", headers: [(String, String)] = [], dropping: Set<String> = []) -> String {
    var lines = ["\(method) \(path) HTTP/1.1"]
    let defaults = [
        ("Host", "127.0.0.1"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
    ]
    for (name, value) in defaults where !dropping.contains(name) && !headers.contains(where: { $0.0 == name }) {
        lines.append("\(name): \(value)")
    }
    for (name, value) in headers { lines.append("\(name): \(value)") }
    return lines.joined(separator: "\r\n") + "\r\n\r\n"
}

typealias Mailbox = TestMailbox
