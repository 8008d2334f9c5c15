import CompressNIO
import NIOCore
import NIOWebSocket
import Testing
@testable import WebSocketEngine

@Suite("permessage-deflate (RFC 7692)")
struct CompressionTests {
    static let windows = Array(8...15)

    @Test(arguments: windows, [false, true])
    func roundTripsInBothDirections(bits: Int, noContextTakeover: Bool) throws {
        let parameters = PerMessageDeflateParameters(
            serverNoContextTakeover: noContextTakeover, clientNoContextTakeover: noContextTakeover,
            serverMaxWindowBits: bits, clientMaxWindowBits: bits)
        var client = makeMachine(role: .client, compression: parameters)
        var server = makeMachine(compression: parameters)
        let message = String(repeating: "the quick brown fox jumps over the lazy dog; ", count: 40)
        for round in 0..<3 {
            let toServer = try client.encode(.text(message + String(round)), now: t0)
            #expect(decodeFrame(toServer)?.rsv1 == true)
            // An 8-bit window is served with Huffman coding only (zlib has no 8-bit deflate window).
            #expect(toServer.readableBytes < message.utf8.count / (bits == 8 ? 1 : 4))
            #expect(server.feed(toServer) == [.message(.text(message + String(round)))])
            let toClient = try server.encode(.binary(ByteBuffer(string: message)), now: t0)
            #expect(client.feed(toClient) == [.message(.binary(ByteBuffer(string: message)))])
        }
    }

    @Test func anEightBitWindowStreamInflatesWithAnEightBitWindow() throws {
        let codec = PerMessageDeflateCodec(parameters: .init(serverMaxWindowBits: 8), role: .server, configuration: .init())
        let message = ByteBuffer(string: String(repeating: "window eight ", count: 100))
        var compressed = ByteBuffer()
        try codec.compress(message, into: &compressed)
        compressed.writeBytes([0x00, 0x00, 0xFF, 0xFF])
        let inflater = try ZlibDecompressor(algorithm: .deflate, windowSize: 8)
        var output = ByteBuffer()
        output.reserveCapacity(4096)
        try inflater.inflate(from: &compressed, to: &output)
        #expect(output == message)
    }

    @Test func contextTakeoverShrinksRepeatedMessages() throws {
        var client = makeMachine(role: .client, compression: .init())
        let message = String(repeating: "abcdefghij", count: 50) + "unique tail 12345"
        let first = try client.encode(.text(message), now: t0).readableBytes
        let second = try client.encode(.text(message), now: t0).readableBytes
        #expect(second < first / 2)
    }

    @Test func smallMessagesAreSentUncompressed() throws {
        var server = makeMachine(compression: .init(), compressionConfiguration: .init(minimumMessageSize: 64))
        #expect(decodeFrame(try server.encode(.text("short"), now: t0))?.rsv1 == false)
        #expect(decodeFrame(try server.encode(.text(String(repeating: "x", count: 64)), now: t0))?.rsv1 == true)
    }

    @Test func inflatesFragmentedCompressedMessagesAndValidatesTheirText() throws {
        var client = makeMachine(role: .client, compression: .init())
        var server = makeMachine(compression: .init())
        var compressed = try client.encode(.text(String(repeating: "fragmented ", count: 30)), now: t0)
        let header = FrameHeader.peek(in: compressed)!
        compressed.moveReaderIndex(forwardBy: header.headerLength)
        var payload = Array(compressed.readableBytesView)
        payload = payload.enumerated().map { $0.element ^ header.maskKey![$0.offset % 4] }
        let half = payload.count / 2
        let actions = server.feed(
            frame(1, Array(payload[..<half]), fin: false, rsv: 0x40), frame(0, Array(payload[half...])))
        #expect(actions == [.message(.text(String(repeating: "fragmented ", count: 30)))])
    }

    @Test func boundsInflationOfACompressionBomb() throws {
        // 4 MiB of zeros deflate to a few KiB; the limit is 64 KiB.
        var client = makeMachine(role: .client, maxFrameSize: 1 << 23, maxMessageSize: 1 << 23, compression: .init())
        let bomb = try client.encode(.binary(ByteBuffer(repeating: 0, count: 4 << 20)), now: t0)
        #expect(bomb.readableBytes < 10_000)
        var server = makeMachine(maxFrameSize: 1 << 16, maxMessageSize: 1 << 16, compression: .init())
        #expect(server.feed(bomb) == [violation(.messageTooBig, "decompressed message exceeds the limit of 65536 bytes")])
    }

    @Test func rejectsCorruptDeflateData() {
        var server = makeMachine(compression: .init())
        #expect(server.feed(frame(2, [0xFF, 0xFF, 0xFF, 0xFF], rsv: 0x40)) == [violation(.invalidFramePayloadData, "compressed message is not valid DEFLATE data")])
    }
}

@Suite("permessage-deflate negotiation (RFC 7692 §7.1)")
struct NegotiationTests {
    private func offers(_ values: String...) -> [WebSocketExtensionElement?] {
        WebSocketExtensionElement.parse(headerValues: values)
    }

    @Test func acceptsThePlainOffer() {
        let answer = PerMessageDeflateNegotiation.accept(offers: self.offers("permessage-deflate"), configuration: .init())
        #expect(answer == PerMessageDeflateParameters())
        #expect(answer?.headerValue == "permessage-deflate")
    }

    @Test func honoursEveryParameter() {
        let answer = PerMessageDeflateNegotiation.accept(
            offers: self.offers("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits"),
            configuration: .init(requestedPeerMaxWindowBits: 12))
        #expect(answer == PerMessageDeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12))
        #expect(answer?.headerValue == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12")
    }

    @Test(arguments: [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover=1",
        "x-webkit-deflate-frame",
        "permessage-deflate; \"unterminated",
    ])
    func declinesInvalidOrUnknownOffers(offer: String) {
        #expect(PerMessageDeflateNegotiation.accept(offers: self.offers(offer), configuration: .init()) == nil)
    }

    @Test func fallsBackToTheNextValidOffer() {
        let answer = PerMessageDeflateNegotiation.accept(
            offers: self.offers("permessage-deflate; bogus, permessage-deflate; server_max_window_bits=\"9\""), configuration: .init())
        #expect(answer == PerMessageDeflateParameters(serverMaxWindowBits: 9))
    }

    @Test func clientChecksTheAnswer() throws {
        let offered = PerMessageDeflateConfiguration(requestedPeerMaxWindowBits: 10)
        func check(_ value: String) -> Result<PerMessageDeflateParameters?, NegotiationFailure> {
            PerMessageDeflateNegotiation.validate(answer: WebSocketExtensionElement.parse(headerValues: [value]), offered: offered)
        }
        #expect(try check("permessage-deflate; server_max_window_bits=9").get() == PerMessageDeflateParameters(serverMaxWindowBits: 9))
        #expect((try? check("permessage-deflate").get()) == nil)
        #expect((try? check("permessage-deflate; server_max_window_bits=11").get()) == nil)
        #expect((try? check("permessage-deflate; server_max_window_bits=9; client_max_window_bits").get()) == nil)
        #expect((try? check("other-extension").get()) == nil)
        #expect(throws: NegotiationFailure.self) {
            try PerMessageDeflateNegotiation.validate(answer: WebSocketExtensionElement.parse(headerValues: ["permessage-deflate"]), offered: nil).get()
        }
    }

    @Test func clientOfferLetsTheServerLimitItsWindow() {
        #expect(PerMessageDeflateNegotiation.offer(configuration: .init()).headerValue == "permessage-deflate; client_max_window_bits")
        #expect(
            PerMessageDeflateNegotiation.offer(configuration: .init(noContextTakeover: true, requestPeerNoContextTakeover: true, maxWindowBits: 10, requestedPeerMaxWindowBits: 11)).headerValue
                == "permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10")
    }
}
