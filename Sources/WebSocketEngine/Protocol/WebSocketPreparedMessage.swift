import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// A message to be sent to many connections (a broadcast), encoded at most once per distinct encoding.
///
/// Every server connection without compression sends the very same frame bytes. Connections whose
/// permessage-deflate parameters let the server reset its context after each message share one compressed frame
/// per distinct window size; connections that keep a compression context (and clients, which mask every frame
/// with their own key) encode their own.
public final class WebSocketPreparedMessage: Sendable {
    /// The message.
    public let message: WebSocketMessage
    /// The payload size in bytes.
    public let size: Int
    /// The uncompressed server frame, encoded up front: most recipients take it without any lock.
    let plainFrame: ByteBuffer
    /// Compressed frames by ``PerMessageDeflateCodec/sharedFrameKey``.
    private let frames = NIOLockedValueBox<[Int: ByteBuffer]>([:])

    /// Prepares `message` for sending to many connections.
    public init(_ message: WebSocketMessage, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.message = message
        switch message {
        case .text(let text):
            self.size = text.utf8.count
            self.plainFrame = FrameEncoder.encode(allocator: allocator, fin: true, opcode: .text, maskKey: nil, text: text)
        case .binary(let buffer):
            self.size = buffer.readableBytes
            self.plainFrame = FrameEncoder.encode(allocator: allocator, fin: true, rsv1: false, opcode: .binary, maskKey: nil, payload: buffer)
        }
    }

    /// The frame cached under `key`, or the one `encode` makes (then cached).
    func frame(key: Int, encode: () -> ByteBuffer) -> ByteBuffer {
        if let frame = self.frames.withLockedValue({ $0[key] }) { return frame }
        let frame = encode()
        return self.frames.withLockedValue { frames in
            if let existing = frames[key] { return existing }
            frames[key] = frame
            return frame
        }
    }
}
