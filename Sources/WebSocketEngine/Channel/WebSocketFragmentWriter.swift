import NIOConcurrencyHelpers
import NIOCore

/// Writes the fragments of one message; see ``WebSocket/sendFragmented(text:_:)``.
public final class WebSocketFragmentWriter: Sendable {
    private let socket: WebSocket
    private let isText: Bool
    private let finished = NIOLockedValueBox(false)

    init(socket: WebSocket, isText: Bool) {
        self.socket = socket
        self.isText = isText
    }

    /// Sends one fragment (UTF-8 bytes for a text message; the whole message must be valid UTF-8).
    public func write(_ payload: ByteBuffer) async throws {
        try await self.socket.sendFragment(payload, isText: self.isText, fin: false)
    }

    /// Sends one fragment of text.
    public func write(_ text: String) async throws {
        try await self.write(ByteBuffer(string: text))
    }

    /// Sends the final fragment; called automatically when the body returns.
    public func finish(_ payload: ByteBuffer = ByteBuffer()) async throws {
        let alreadyFinished = self.finished.withLockedValue { value in
            defer { value = true }
            return value
        }
        guard !alreadyFinished else { return }
        try await self.socket.sendFragment(payload, isText: self.isText, fin: true)
    }
}
