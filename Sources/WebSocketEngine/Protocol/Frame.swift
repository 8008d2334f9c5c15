import NIOCore
import NIOWebSocket

/// The header of one WebSocket frame (RFC 6455 §5.2) exactly as it was read off the wire.
///
/// Parsing only decodes fields; whether they are acceptable (RSV bits, opcodes, lengths, masking) is decided by
/// ``WebSocketStateMachine`` so that every protocol rule lives in one place.
struct FrameHeader: Equatable, Sendable {
    var fin: Bool
    /// RSV1, RSV2 and RSV3 as the top bits of the first byte (0x40, 0x20, 0x10).
    var reservedBits: UInt8
    /// The 4-bit opcode, possibly one that RFC 6455 reserves.
    var opcode: UInt8
    var maskKey: WebSocketMaskingKey?
    var payloadLength: UInt64
    /// True when the length used more bytes than needed (RFC 6455 §5.2: "the minimal number of bytes MUST be used").
    var lengthNotMinimal: Bool
    /// Bytes the header took on the wire.
    var headerLength: Int

    var rsv1: Bool { self.reservedBits & 0x40 != 0 }
    var isControl: Bool { self.opcode & 0x08 != 0 }

    /// Decodes a header at the reader index of `buffer` without consuming anything.
    ///
    /// - Returns: `nil` while the header is not complete yet.
    static func peek(in buffer: ByteBuffer) -> FrameHeader? {
        let available = buffer.readableBytes
        guard available >= 2,
            let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self)
        else { return nil }
        let masked = second & 0x80 != 0
        var length = UInt64(second & 0x7F)
        var offset = 2
        var notMinimal = false
        if length == 126 {
            guard available >= offset + 2,
                let extended = buffer.getInteger(at: buffer.readerIndex + offset, as: UInt16.self)
            else { return nil }
            length = UInt64(extended)
            notMinimal = length < 126
            offset += 2
        } else if length == 127 {
            guard available >= offset + 8,
                let extended = buffer.getInteger(at: buffer.readerIndex + offset, as: UInt64.self)
            else { return nil }
            length = extended
            notMinimal = length <= UInt64(UInt16.max)
            offset += 8
        }
        var maskKey: WebSocketMaskingKey? = nil
        if masked {
            guard available >= offset + 4,
                let key = buffer.getInteger(at: buffer.readerIndex + offset, as: UInt32.self)
            else { return nil }
            maskKey = .wire(key)
            offset += 4
        }
        return FrameHeader(
            fin: first & 0x80 != 0,
            reservedBits: first & 0x70,
            opcode: first & 0x0F,
            maskKey: maskKey,
            payloadLength: length,
            lengthNotMinimal: notMinimal,
            headerLength: offset
        )
    }
}

/// Writes WebSocket frames.
enum FrameEncoder {
    /// The largest header a frame can have: 2 + 8 bytes of length + 4 bytes of mask.
    static let maxHeaderLength = 14

    /// The headers of unmasked, unfragmented binary frames with payloads of 0 to 65,535 bytes, one after the other
    /// in one buffer made on first use (2 bytes each up to 125, then 4; 256 KiB): a header is a slice of it, so
    /// sending such a frame allocates nothing for its header.
    private static let binaryHeaders: ByteBuffer = {
        var table = ByteBuffer()
        table.reserveCapacity(126 * 2 + (Int(UInt16.max) + 1 - 126) * 4)
        for length in 0...Int(UInt16.max) {
            FrameEncoder.writeHeader(into: &table, fin: true, rsv1: false, opcode: .binary, maskKey: nil, payloadLength: length)
        }
        return table
    }()

    /// The header of an unmasked, unfragmented binary frame (a server's): shared for payloads under 64 KiB.
    static func serverBinaryHeader(length: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        if length < 126 { return self.binaryHeaders.getSlice(at: length * 2, length: 2)! }
        if length <= Int(UInt16.max) { return self.binaryHeaders.getSlice(at: 126 * 2 + (length - 126) * 4, length: 4)! }
        var header = allocator.buffer(capacity: 10)
        self.writeHeader(into: &header, fin: true, rsv1: false, opcode: .binary, maskKey: nil, payloadLength: length)
        return header
    }

    /// Appends a frame header for `payloadLength` bytes to `buffer`.
    static func writeHeader(
        into buffer: inout ByteBuffer,
        fin: Bool,
        rsv1: Bool,
        opcode: WebSocketOpcode,
        maskKey: WebSocketMaskingKey?,
        payloadLength: Int
    ) {
        let written = self.setHeader(
            into: &buffer, at: buffer.writerIndex, fin: fin, rsv1: rsv1, opcode: opcode, maskKey: maskKey,
            payloadLength: payloadLength)
        buffer.moveWriterIndex(forwardBy: written)
    }

    /// The length of a frame header for `payloadLength` bytes.
    static func headerLength(payloadLength: Int, masked: Bool) -> Int {
        let lengthBytes = payloadLength < 126 ? 0 : payloadLength <= Int(UInt16.max) ? 2 : 8
        return 2 + lengthBytes + (masked ? 4 : 0)
    }

    /// Writes a frame header for `payloadLength` bytes at `index` (the writer index does not move).
    ///
    /// - Returns: the header's length.
    @discardableResult
    static func setHeader(
        into buffer: inout ByteBuffer,
        at index: Int,
        fin: Bool,
        rsv1: Bool,
        opcode: WebSocketOpcode,
        maskKey: WebSocketMaskingKey?,
        payloadLength: Int
    ) -> Int {
        var first = UInt8(webSocketOpcode: opcode)
        if fin { first |= 0x80 }
        if rsv1 { first |= 0x40 }
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        var written: Int
        if payloadLength < 126 {
            written = buffer.setMultipleIntegers(first, maskBit | UInt8(payloadLength), at: index)
        } else if payloadLength <= Int(UInt16.max) {
            written = buffer.setMultipleIntegers(first, maskBit | 126, UInt16(payloadLength), at: index)
        } else {
            written = buffer.setMultipleIntegers(first, maskBit | 127, UInt64(payloadLength), at: index)
        }
        if let maskKey {
            written += buffer.setBytes(maskKey, at: index + written)
        }
        return written
    }

    /// Completes a frame whose payload was written after ``maxHeaderLength`` reserved bytes: writes the header
    /// just in front of the payload (no copy of the payload) and masks it when a key is given.
    static func finishFrame(
        _ buffer: inout ByteBuffer,
        payloadStart: Int,
        fin: Bool,
        rsv1: Bool,
        opcode: WebSocketOpcode,
        maskKey: WebSocketMaskingKey?
    ) {
        let payloadLength = buffer.writerIndex - payloadStart
        let headerStart = payloadStart - self.headerLength(payloadLength: payloadLength, masked: maskKey != nil)
        precondition(headerStart >= buffer.readerIndex, "not enough room reserved for the frame header")
        // Written in place in front of the payload: no separate header buffer.
        self.setHeader(
            into: &buffer, at: headerStart, fin: fin, rsv1: rsv1, opcode: opcode, maskKey: maskKey,
            payloadLength: payloadLength)
        if let maskKey {
            buffer.webSocketMaskPayload(from: payloadStart, key: maskKey)
        }
        buffer.moveReaderIndex(to: headerStart)
    }

    /// Encodes a whole frame (header and payload) into one new buffer, masking the payload when a key is given.
    static func encode(
        allocator: ByteBufferAllocator,
        fin: Bool,
        rsv1: Bool,
        opcode: WebSocketOpcode,
        maskKey: WebSocketMaskingKey?,
        payload: ByteBuffer
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: self.maxHeaderLength + payload.readableBytes)
        self.writeHeader(
            into: &buffer, fin: fin, rsv1: rsv1, opcode: opcode, maskKey: maskKey,
            payloadLength: payload.readableBytes)
        let payloadStart = buffer.writerIndex
        buffer.writeImmutableBuffer(payload)
        if let maskKey {
            buffer.webSocketMaskPayload(from: payloadStart, key: maskKey)
        }
        return buffer
    }

    /// Encodes a text frame straight from a string's UTF-8 bytes, without an intermediate buffer.
    static func encode(
        allocator: ByteBufferAllocator,
        fin: Bool,
        opcode: WebSocketOpcode,
        maskKey: WebSocketMaskingKey?,
        text: String
    ) -> ByteBuffer {
        let length = text.utf8.count
        var buffer = allocator.buffer(capacity: self.maxHeaderLength + length)
        self.writeHeader(
            into: &buffer, fin: fin, rsv1: false, opcode: opcode, maskKey: maskKey, payloadLength: length)
        let payloadStart = buffer.writerIndex
        buffer.writeString(text)
        if let maskKey {
            buffer.webSocketMaskPayload(from: payloadStart, key: maskKey)
        }
        return buffer
    }
}

extension WebSocketMaskingKey {
    /// The key whose four bytes, read from the wire in order, make `value` (big-endian). NIO's public initializer
    /// takes a generic collection and allocates; this goes through its inlinable `random(using:)` with a generator
    /// that yields exactly these bits, which builds the key from the integer directly.
    static func wire(_ value: UInt32) -> WebSocketMaskingKey {
        var bits = WireBits(value: value)
        return .random(using: &bits)
    }

    private struct WireBits: RandomNumberGenerator {
        let value: UInt32
        mutating func next() -> UInt64 { UInt64(self.value) }
    }
}

extension ByteBuffer {
    /// Unmasks the readable bytes in place without copy-on-write. Only for a frame payload just cut out of the
    /// receive buffer: those bytes are seen by nothing else (NIO does not read or reuse a receive buffer that is
    /// still referenced), so writing them where they are saves a copy and an allocation per message.
    mutating func unmaskReceivedPayload(key: WebSocketMaskingKey) {
        self.withUnsafeReadableBytes { bytes in
            UnsafeMutableRawBufferPointer(mutating: bytes).webSocketMask(key: key, keyOffset: 0)
        }
    }

    /// XORs the bytes from `index` to the writer index with a masking key (RFC 6455 §5.3), in place.
    mutating func webSocketMaskPayload(from index: Int, key: WebSocketMaskingKey, keyOffset: Int = 0) {
        let length = self.writerIndex - index
        guard length > 0 else { return }
        let start = index - self.readerIndex
        self.withUnsafeMutableReadableBytes { bytes in
            UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + length)])
                .webSocketMask(key: key, keyOffset: keyOffset)
        }
    }
}

extension UnsafeMutableRawBufferPointer {
    /// Masks or unmasks these bytes in place, eight at a time; `keyOffset` is the position of the first byte
    /// within the frame's payload, so that a payload can be processed in several pieces.
    func webSocketMask(key: WebSocketMaskingKey, keyOffset: Int) {
        let count = self.count
        guard count > 0, let base = self.baseAddress else { return }
        let o = keyOffset & 3
        let rotated = (key[o], key[(o + 1) & 3], key[(o + 2) & 3], key[(o + 3) & 3])
        let word = Swift.withUnsafeBytes(of: (rotated, rotated)) { $0.loadUnaligned(as: UInt64.self) }
        var index = 0
        while index &+ 8 <= count {
            let value = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            base.storeBytes(of: value ^ word, toByteOffset: index, as: UInt64.self)
            index &+= 8
        }
        while index < count {
            self[index] ^= key[(o &+ index) & 3]
            index &+= 1
        }
    }
}
