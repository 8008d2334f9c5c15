import CompressNIO
import NIOCore

/// The compression state of one connection's permessage-deflate extension (RFC 7692 §7.2).
///
/// It owns zlib streams (created on first use, so idle connections pay nothing) and follows the negotiated
/// parameters: the sender's window and context takeover for compression, a 15-bit window for decompression (a
/// larger window than the peer's is always safe). It never does I/O; ``WebSocketStateMachine`` drives it.
final class PerMessageDeflateCodec {
    /// Failures while inflating a message.
    enum InflateError: Error, Equatable {
        case tooLarge
        case corrupt
    }

    /// The empty stored block a sync flush ends with; RFC 7692 §7.2.1 removes it from the wire.
    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    let parameters: PerMessageDeflateParameters
    let role: WebSocketRole
    /// Messages shorter than this are sent uncompressed.
    let minimumMessageSize: Int
    private let compressionLevel: Int32
    private let memoryLevel: Int32
    private let configuration: PerMessageDeflateConfiguration
    private var compressor: ZlibCompressor?
    private var decompressor: ZlibDecompressor?
    /// The peer ended its deflate stream (a BFINAL block); the next message needs a fresh inflate stream.
    private var decompressorEnded = false

    init(parameters: PerMessageDeflateParameters, role: WebSocketRole, configuration: PerMessageDeflateConfiguration) {
        self.parameters = parameters
        self.role = role
        self.minimumMessageSize = configuration.minimumMessageSize
        self.compressionLevel = Int32(configuration.compressionLevel)
        self.memoryLevel = Int32(configuration.memoryLevel)
        self.configuration = configuration
    }

    /// When this endpoint resets its context after every message, its compressed frames depend on the message
    /// and these settings only, so connections with an equal key can share one frame; `nil` otherwise.
    var sharedFrameKey: Int? {
        guard self.localNoContextTakeover else { return nil }
        return 1 + self.localWindowBits + 16 * (Int(self.compressionLevel) + 16 * Int(self.memoryLevel))
    }

    /// A new codec with the same settings and no history.
    func makeStateless() -> PerMessageDeflateCodec {
        PerMessageDeflateCodec(parameters: self.parameters, role: self.role, configuration: self.configuration)
    }

    /// Whether this endpoint resets its compression context after each message.
    private var localNoContextTakeover: Bool {
        self.role == .server ? self.parameters.serverNoContextTakeover : self.parameters.clientNoContextTakeover
    }

    /// Whether the peer resets its compression context after each message.
    private var peerNoContextTakeover: Bool {
        self.role == .server ? self.parameters.clientNoContextTakeover : self.parameters.serverNoContextTakeover
    }

    private var localWindowBits: Int {
        (self.role == .server ? self.parameters.serverMaxWindowBits : self.parameters.clientMaxWindowBits) ?? 15
    }

    /// Whether a message of `size` bytes is worth compressing (never an empty one: zlib cannot flush nothing twice).
    func shouldCompress(size: Int) -> Bool {
        size > 0 && size >= self.minimumMessageSize
    }

    /// Compresses one whole, non-empty message into `output` (after whatever it already holds), without the
    /// trailing `00 00 FF FF`.
    func compress(_ payload: ByteBuffer, into output: inout ByteBuffer) throws {
        let compressor = try self.makeCompressor()
        var input = payload
        output.reserveCapacity(minimumWritableBytes: compressor.maxSize(from: input))
        precondition(input.readableBytes > 0, "empty messages are sent uncompressed")
        try compressor.deflate(from: &input, to: &output, flush: .sync)
        if output.readableBytes >= 4,
            output.getBytes(at: output.writerIndex - 4, length: 4) == Self.tail
        {
            output.moveWriterIndex(to: output.writerIndex - 4)
        }
        if self.localNoContextTakeover {
            try compressor.reset()
        }
    }

    private func makeCompressor() throws -> ZlibCompressor {
        if let compressor = self.compressor { return compressor }
        // zlib refuses an 8-bit window for raw deflate. Compressing with 9 bits and Huffman coding only (no
        // back-references at all) produces a stream any 8-bit inflater can read.
        let bits = self.localWindowBits
        let configuration = ZlibConfiguration(
            windowSize: Int32(max(bits, 9)),
            compressionLevel: self.compressionLevel,
            memoryLevel: self.memoryLevel,
            strategy: bits == 8 ? .huffmanOnly : .default
        )
        let compressor = try ZlibCompressor(algorithm: .deflate, configuration: configuration)
        self.compressor = compressor
        return compressor
    }

    /// Inflates part of a compressed message, appending to `output`; fails once `output` would exceed `limit`.
    func inflate(_ chunk: ByteBuffer, into output: inout ByteBuffer, limit: Int) throws(InflateError) {
        var input = chunk
        try self.inflate(&input, into: &output, limit: limit)
    }

    /// Ends a compressed message: feeds the removed `00 00 FF FF` so that zlib flushes the last bytes.
    func finishMessage(into output: inout ByteBuffer, limit: Int) throws(InflateError) {
        var tail = ByteBuffer(bytes: Self.tail)
        try self.inflate(&tail, into: &output, limit: limit)
        if self.decompressorEnded || self.peerNoContextTakeover {
            // A reset is required after a final block and harmless when the peer keeps no context anyway.
            do {
                try self.decompressor?.reset()
            } catch {
                self.decompressor = nil
            }
            self.decompressorEnded = false
        }
    }

    private func inflate(_ input: inout ByteBuffer, into output: inout ByteBuffer, limit: Int) throws(InflateError) {
        let decompressor: ZlibDecompressor
        if let existing = self.decompressor {
            decompressor = existing
        } else {
            do {
                decompressor = try ZlibDecompressor(algorithm: .deflate, windowSize: 15)
            } catch {
                throw .corrupt
            }
            self.decompressor = decompressor
        }
        while input.readableBytes > 0, !self.decompressorEnded {
            guard output.readableBytes <= limit else { throw .tooLarge }
            if output.writableBytes == 0 {
                // Grow geometrically, but never more than one byte past the limit: that byte detects overflow.
                let wanted = max(4096, min(output.readableBytes, 1 << 20), input.readableBytes * 4)
                output.reserveCapacity(minimumWritableBytes: min(wanted, limit + 1 - output.readableBytes))
            }
            let before = (input.readableBytes, output.readableBytes)
            do {
                try decompressor.inflate(from: &input, to: &output)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                continue
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                break
            } catch {
                throw .corrupt
            }
            if before == (input.readableBytes, output.readableBytes) {
                // No progress with room to spare: zlib reached the end of a final block.
                self.decompressorEnded = true
            }
        }
        guard output.readableBytes <= limit else { throw .tooLarge }
    }
}

/// Owned by one connection's state machine, on its event loop.
@available(*, unavailable)
extension PerMessageDeflateCodec: Sendable {}
