import NIOCore
import NIOWebSocket
@testable import WebSocketEngine

let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
let clientKey: WebSocketMaskingKey = [0x11, 0x22, 0x33, 0x44]

/// A state machine with small limits for tests.
func makeMachine(
    role: WebSocketRole = .server,
    maxFrameSize: Int = 1 << 16,
    maxMessageSize: Int = 1 << 17,
    compression: PerMessageDeflateParameters? = nil,
    compressionConfiguration: PerMessageDeflateConfiguration = .init(minimumMessageSize: 0),
    keepalive: (TimeAmount, TimeAmount)? = nil,
    idleTimeout: TimeAmount? = nil
) -> WebSocketStateMachine {
    var machine = WebSocketStateMachine(
        configuration: .init(
            role: role, maxFrameSize: maxFrameSize, maxMessageSize: maxMessageSize, closeTimeout: .seconds(5),
            keepalive: keepalive.map { (interval: $0.0, timeout: $0.1) }, idleTimeout: idleTimeout),
        compression: compression.map { PerMessageDeflateCodec(parameters: $0, role: role, configuration: compressionConfiguration) },
        now: t0)
    machine.makeMaskKey = { clientKey }
    return machine
}

/// Encodes a frame by hand: a client's (masked) by default.
func frame(
    _ opcode: UInt8,
    _ payload: [UInt8] = [],
    fin: Bool = true,
    rsv: UInt8 = 0,
    mask: WebSocketMaskingKey? = clientKey
) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger((fin ? 0x80 : 0) | rsv | opcode)
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    if payload.count < 126 {
        buffer.writeInteger(maskBit | UInt8(payload.count))
    } else if payload.count <= 0xFFFF {
        buffer.writeInteger(maskBit | 126)
        buffer.writeInteger(UInt16(payload.count))
    } else {
        buffer.writeInteger(maskBit | 127)
        buffer.writeInteger(UInt64(payload.count))
    }
    if let mask {
        buffer.writeBytes(mask)
        buffer.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
    } else {
        buffer.writeBytes(payload)
    }
    return buffer
}

func text(_ string: String, fin: Bool = true, mask: WebSocketMaskingKey? = clientKey) -> ByteBuffer {
    frame(1, Array(string.utf8), fin: fin, mask: mask)
}

func closePayload(_ code: UInt16, _ reason: String = "") -> [UInt8] {
    [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
}

extension WebSocketStateMachine {
    /// Feeds bytes and collects actions until more data is needed.
    mutating func feed(_ buffers: ByteBuffer..., now: NIODeadline = t0) -> [InboundAction] {
        var actions: [InboundAction] = []
        for buffer in buffers {
            self.receive(buffer, now: now)
            while true {
                let action = self.nextInboundAction(now: now)
                if action == .needMoreData { break }
                actions.append(action)
            }
        }
        return actions
    }
}

/// Decodes one frame written by the machine: (fin, rsv1, opcode, unmasked payload, was masked).
func decodeFrame(_ buffer: ByteBuffer) -> (fin: Bool, rsv1: Bool, opcode: UInt8, payload: [UInt8], masked: Bool)? {
    guard let header = FrameHeader.peek(in: buffer) else { return nil }
    var payload = Array(buffer.readableBytesView.dropFirst(header.headerLength).prefix(Int(header.payloadLength)))
    if let key = header.maskKey {
        payload = payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }
    return (header.fin, header.rsv1, header.opcode, payload, header.maskKey != nil)
}

func violation(_ code: WebSocketCloseCode, _ reason: String) -> WebSocketStateMachine.InboundAction {
    .failed(.protocolViolation(code: code, reason: reason))
}
