import FuzzSupport
import NIOCore
import WebSocketEngine

// The frame parser and the protocol state machine, through the engine's channel handler: the input is what the
// peer sends after a completed handshake, in the server or the client role, with or without permessage-deflate.
//
// Input: three option bytes, then the bytes from the peer.
//   byte 0: bit 0 role (0 server: frames must be masked, 1 client); bit 1 permessage-deflate; bit 2
//           server_no_context_takeover; bit 3 client_no_context_takeover; bits 4-5 how the bytes are cut into
//           reads (0 one read, 1 reads of a fixed size, 2 one byte per read, 3 reads of varying sizes); bit 6 echo
//           every message (then a peer of the other role reads what was written back: it must find no protocol
//           error and exactly the messages echoed); bit 7 start a close of our own after the first event.
//   byte 1: low nibble server_max_window_bits, high nibble client_max_window_bits (8-15; anything else: absent).
//   byte 2: bits 0-1 the frame and message limit (1 MiB, 1 KiB, 125 B, 64 KiB); bit 2 a zero close timeout;
//           bit 3 compress every message sent (else from 32 bytes); bits 4-7 the read size (mode 1: 1-16 bytes)
//           or the seed of the sizes (mode 3).

/// The options of an input.
struct Options {
    var role: WebSocketRole
    var compression: PerMessageDeflateParameters?
    var chunking: UInt8
    var echo: Bool
    var closeAfterFirst: Bool
    var limit: Int
    var zeroCloseTimeout: Bool
    var compressAll: Bool
    var chunkParameter: UInt8

    init(_ input: inout FuzzInput) {
        let flags = input.byte()
        let windows = input.byte()
        let more = input.byte()
        self.role = flags & 1 == 0 ? .server : .client
        if flags & 2 != 0 {
            self.compression = PerMessageDeflateParameters(
                serverNoContextTakeover: flags & 4 != 0,
                clientNoContextTakeover: flags & 8 != 0,
                serverMaxWindowBits: Self.windowBits(windows & 0x0F),
                clientMaxWindowBits: Self.windowBits(windows >> 4))
        }
        self.chunking = (flags >> 4) & 3
        self.echo = flags & 0x40 != 0
        self.closeAfterFirst = flags & 0x80 != 0
        self.limit = [1 << 20, 1024, 125, 1 << 16][Int(more & 3)]
        self.zeroCloseTimeout = more & 4 != 0
        self.compressAll = more & 8 != 0
        self.chunkParameter = more >> 4
    }

    private static func windowBits(_ value: UInt8) -> Int? {
        value >= 8 ? Int(value) : nil
    }

    var configuration: WebSocketConfiguration {
        WebSocketConfiguration(
            maxFrameSize: self.limit, maxMessageSize: self.limit,
            closeTimeout: self.zeroCloseTimeout ? .zero : .seconds(5),
            compression: PerMessageDeflateConfiguration(minimumMessageSize: self.compressAll ? 0 : 32))
    }

    /// The sizes of the reads that deliver `count` bytes.
    func readSizes(total count: Int) -> [Int] {
        var sizes: [Int] = []
        var left = count
        var seed = UInt32(self.chunkParameter) &+ 1
        while left > 0 {
            let size: Int
            switch self.chunking {
            case 0: size = left
            case 1: size = Int(self.chunkParameter) + 1
            case 2: size = 1
            default:
                // A small linear congruential generator: the same input always cuts the same way.
                seed = seed &* 1_103_515_245 &+ 12345
                size = Int((seed >> 16) % 64) + 1
            }
            sizes.append(min(size, left))
            left -= sizes[sizes.count - 1]
        }
        return sizes
    }
}

/// Runs one input.
func run(_ input: inout FuzzInput) {
    let options = Options(&input)
    let connection = EmbeddedConnection(
        role: options.role, compression: options.compression, configuration: options.configuration,
        echo: options.echo, closeAfter: options.closeAfterFirst ? 1 : nil)
    var bytes = ByteBuffer(bytes: input.rest)
    for size in options.readSizes(total: bytes.readableBytes) {
        guard connection.isActive else { break }
        connection.receive(bytes.readSlice(length: size)!)
    }
    connection.finish()

    let events = connection.recorder.events
    fuzzCheck(events.last.map(isClose) == true, "the last event is not the close: \(events.suffix(3))")
    fuzzCheck(events.filter(isClose).count == 1, "more than one close event")
    if options.echo {
        checkPeerReads(connection, options: options)
    }
}

/// A peer of the other role, with the same negotiated parameters, reads what the connection wrote: the engine's
/// own frames (echoes, pongs, its close) must be valid, and the messages must be those echoed.
func checkPeerReads(_ connection: EmbeddedConnection, options: Options) {
    let peer = EmbeddedConnection(
        role: options.role == .server ? .client : .server, compression: options.compression,
        configuration: WebSocketConfiguration(maxFrameSize: 1 << 24, maxMessageSize: 1 << 24, compression: .init()))
    for buffer in connection.written {
        peer.receive(buffer)
    }
    peer.finish()
    let errors = peer.recorder.events.filter { if case .error = $0 { return true } else { return false } }
    fuzzCheck(errors.isEmpty, "the peer could not read what the connection wrote: \(errors)")
    let received = peer.recorder.messages
    let echoed = connection.recorder.echoed
    // A connection that closed TCP with writes still queued sent a prefix of its echoes.
    fuzzCheck(
        received.count <= echoed.count && zip(received, echoed).allSatisfy(==),
        "the peer read \(received.count) messages that differ from the \(echoed.count) echoed")
}

func isClose(_ event: WebSocketEvent) -> Bool {
    if case .close = event { return true }
    return false
}

/// libFuzzer's entry point: one input, then everything it made is released.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    run(&input)
    return 0
}
