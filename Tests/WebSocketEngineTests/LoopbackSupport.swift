import NIOCore
import NIOHTTP1
import WebSocketEngine
import WebSocketTestKit

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
