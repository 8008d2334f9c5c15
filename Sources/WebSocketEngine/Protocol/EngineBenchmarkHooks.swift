import NIOCore
import NIOWebSocket

/// Entry points into the engine's internal hot paths for the microbenchmarks of the `Benchmarks/` package
/// (`@_spi(Benchmarks) import WebSocketEngine`). Not API: they may change with the internals they measure.
@_spi(Benchmarks)
public enum EngineBenchmarkHooks {
    /// Parses every frame of `bytes` with a server's state machine (client frames are masked) and returns how many
    /// messages it found; UTF-8 of text messages is validated on the way, as on a connection.
    public static func parseAsServer(_ bytes: ByteBuffer, maxMessageSize: Int = 1 << 24) -> Int {
        var machine = WebSocketStateMachine(
            configuration: .init(
                role: .server, maxFrameSize: maxMessageSize, maxMessageSize: maxMessageSize, closeTimeout: .seconds(5),
                keepalive: nil, idleTimeout: nil),
            compression: nil, now: .now())
        let now = NIODeadline.now()
        machine.receive(bytes, now: now)
        var messages = 0
        while true {
            switch machine.nextInboundAction(now: now) {
            case .needMoreData: return messages
            case .message: messages += 1
            case .failed, .closed: return -1
            case .ping, .pong: continue
            }
        }
    }

    /// Encodes one unmasked (server) frame with `payload`.
    public static func encodeServerFrame(_ payload: ByteBuffer, text: Bool = false) -> ByteBuffer {
        FrameEncoder.encode(
            allocator: ByteBufferAllocator(), fin: true, rsv1: false, opcode: text ? .text : .binary, maskKey: nil,
            payload: payload)
    }

    /// Encodes one masked (client) frame with `payload`, as a client would send it.
    public static func encodeClientFrame(_ payload: ByteBuffer, text: Bool = false, key: UInt32 = 0x0102_0304) -> ByteBuffer {
        FrameEncoder.encode(
            allocator: ByteBufferAllocator(), fin: true, rsv1: false, opcode: text ? .text : .binary,
            maskKey: .wire(key), payload: payload)
    }

    /// XORs the readable bytes of `buffer` with a masking key in place (RFC 6455 §5.3), the way inbound payloads are
    /// unmasked.
    public static func unmask(_ buffer: inout ByteBuffer, key: UInt32 = 0x0102_0304) {
        buffer.webSocketMaskPayload(from: buffer.readerIndex, key: .wire(key))
    }
}
