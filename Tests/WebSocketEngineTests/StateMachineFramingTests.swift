import NIOCore
import NIOWebSocket
import Testing
@testable import WebSocketEngine

@Suite("State machine: framing rules (RFC 6455 §5)")
struct StateMachineFramingTests {
    @Test func deliversWholeTextAndBinaryMessages() {
        var machine = makeMachine()
        #expect(machine.feed(text("hello")) == [.message(.text("hello"))])
        #expect(machine.feed(frame(2, [1, 2, 3])) == [.message(.binary(ByteBuffer(bytes: [1, 2, 3])))])
    }

    @Test func parsesFramesSplitAtEveryByte() {
        var machine = makeMachine()
        let bytes = Array(text("split across reads").readableBytesView)
        var actions: [WebSocketStateMachine.InboundAction] = []
        for byte in bytes {
            actions += machine.feed(ByteBuffer(bytes: [byte]))
        }
        #expect(actions == [.message(.text("split across reads"))])
    }

    @Test func usesExtendedLengths() {
        var machine = makeMachine()
        let medium = [UInt8](repeating: 7, count: 300)
        let large = [UInt8](repeating: 9, count: 70_000)
        #expect(machine.feed(frame(2, medium)) == [.message(.binary(ByteBuffer(bytes: medium)))])
        var big = makeMachine(maxFrameSize: 1 << 20, maxMessageSize: 1 << 20)
        #expect(big.feed(frame(2, large)) == [.message(.binary(ByteBuffer(bytes: large)))])
    }

    @Test func splitEncodingKeepsTheBinaryPayloadAndWritesTheSameBytes() throws {
        var machine = makeMachine()
        // 126 twice: a header taken from the shared table must come back unchanged after the first was written to.
        for length in [0, 1, 125, 126, 126, 127, 300, 4_096, 65_534, 65_535, 65_536, 70_000] {
            let payload = ByteBuffer(repeating: 5, count: length)
            guard case .split(let header, let body) = try machine.encodeParts(.binary(payload), now: .now()) else {
                Issue.record("expected a split frame for \(length) bytes")
                continue
            }
            var joined = header
            joined.writeImmutableBuffer(body)
            #expect(joined == FrameEncoder.encode(allocator: .init(), fin: true, rsv1: false, opcode: .binary, maskKey: nil, payload: payload))
            #expect(body == payload)
        }
        guard case .whole = try machine.encodeParts(.text("text is encoded whole"), now: .now()) else {
            Issue.record("text frames are encoded in one buffer")
            return
        }
    }

    @Test func masksKeysReadFromTheWireInOrder() {
        let key = WebSocketMaskingKey.wire(0x0A0B_0C0D)
        #expect([key[0], key[1], key[2], key[3]] == [0x0A, 0x0B, 0x0C, 0x0D])
    }

    @Test func reassemblesFragmentsWithInterleavedControlFrames() {
        var machine = makeMachine()
        let actions = machine.feed(
            text("frag", fin: false), frame(9, [1]), frame(0, Array("men".utf8), fin: false), frame(10, [2]),
            frame(0, Array("ted".utf8)))
        #expect(actions.count == 3)
        #expect(actions[0] == .ping(ByteBuffer(bytes: [1]), pong: FrameEncoder.encode(
            allocator: .init(), fin: true, rsv1: false, opcode: .pong, maskKey: nil, payload: ByteBuffer(bytes: [1]))))
        #expect(actions[1] == .pong(ByteBuffer(bytes: [2])))
        #expect(actions[2] == .message(.text("fragmented")))
    }

    @Test func serverRequiresMaskedFrames() {
        var machine = makeMachine()
        #expect(machine.feed(text("x", mask: nil)) == [violation(.protocolError, "client frame is not masked")])
        let (frame, closeTCPAt) = machine.commitClose(now: t0)
        #expect(closeTCPAt == nil)
        #expect(decodeFrame(frame!)?.payload == closePayload(1002, "client frame is not masked"))
    }

    @Test func clientRejectsMaskedFrames() {
        var machine = makeMachine(role: .client)
        #expect(machine.feed(text("x")) == [violation(.protocolError, "server frame is masked")])
        #expect(decodeFrame(machine.commitClose(now: t0).frame!)?.masked == true)
    }

    @Test func rejectsReservedBitsWithoutAnExtension() {
        var rsv1 = makeMachine()
        #expect(rsv1.feed(frame(1, [], rsv: 0x40)) == [violation(.protocolError, "RSV1 set on a frame that cannot be compressed")])
        var rsv2 = makeMachine()
        #expect(rsv2.feed(frame(1, [], rsv: 0x20)) == [violation(.protocolError, "RSV2/RSV3 set but no extension defines them")])
        var rsv3 = makeMachine(compression: .init())
        #expect(rsv3.feed(frame(1, [], rsv: 0x10)) == [violation(.protocolError, "RSV2/RSV3 set but no extension defines them")])
    }

    @Test(arguments: [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] as [UInt8])
    func rejectsReservedOpcodes(opcode: UInt8) {
        var machine = makeMachine()
        #expect(machine.feed(frame(opcode)) == [violation(.protocolError, "reserved opcode \(opcode)")])
    }

    @Test func rejectsBadControlFrames() {
        var large = makeMachine()
        #expect(large.feed(frame(9, [UInt8](repeating: 0, count: 126))) == [violation(.protocolError, "control frame payload exceeds 125 bytes")])
        var fragmented = makeMachine()
        #expect(fragmented.feed(frame(9, [], fin: false)) == [violation(.protocolError, "control frame is fragmented")])
    }

    @Test func rejectsBrokenFragmentation() {
        var orphan = makeMachine()
        #expect(orphan.feed(frame(0, [1])) == [violation(.protocolError, "continuation frame without a message to continue")])
        var nested = makeMachine()
        #expect(nested.feed(text("a", fin: false), text("b")) == [violation(.protocolError, "new data frame before the fragmented message was finished")])
    }

    @Test func rejectsLengthWithTheHighBitAndNonMinimalLengths() {
        var machine = makeMachine()
        var bytes = ByteBuffer(bytes: [0x82, 0xFF])
        bytes.writeInteger(UInt64(1) << 63)
        bytes.writeBytes(clientKey)
        #expect(machine.feed(bytes) == [violation(.protocolError, "payload length has its most significant bit set")])
        var padded = makeMachine()
        var short = ByteBuffer(bytes: [0x82, 0xFE])
        short.writeInteger(UInt16(5))
        short.writeBytes(clientKey)
        #expect(padded.feed(short) == [violation(.protocolError, "payload length is not minimally encoded")])
    }

    @Test func refusesOversizedFramesBeforeThePayloadArrives() {
        var machine = makeMachine(maxFrameSize: 100)
        var header = frame(2, [UInt8](repeating: 0, count: 200))
        header.moveWriterIndex(to: header.readerIndex + 8)  // the header only
        #expect(machine.feed(header) == [violation(.messageTooBig, "frame of 200 bytes exceeds the limit of 100")])
    }

    @Test func refusesOversizedMessagesAcrossFragments() {
        var machine = makeMachine(maxFrameSize: 100, maxMessageSize: 150)
        let part = [UInt8](repeating: 1, count: 100)
        #expect(machine.feed(frame(2, part, fin: false), frame(0, part)) == [violation(.messageTooBig, "message exceeds the limit of 150 bytes")])
    }

    @Test func ignoresEverythingAfterAClose() {
        var machine = makeMachine()
        let actions = machine.feed(frame(8, closePayload(1000)), frame(9, [1]), text("late"))
        #expect(actions == [.closed(WebSocketCloseInfo(code: .normalClosure, initiatedLocally: false))])
    }

    @Test func clientFramesAreMaskedAndServerFramesAreNot() throws {
        var client = makeMachine(role: .client)
        var server = makeMachine()
        let fromClient = try client.encode(.text("hi"), now: t0)
        let fromServer = try server.encode(.text("hi"), now: t0)
        #expect(decodeFrame(fromClient)?.masked == true)
        #expect(decodeFrame(fromClient)?.payload == Array("hi".utf8))
        #expect(decodeFrame(fromServer)?.masked == false)
        #expect(server.feed(fromClient) == [.message(.text("hi"))])
        #expect(client.feed(fromServer) == [.message(.text("hi"))])
    }

    @Test func streamsFragmentsOfOneMessage() throws {
        var client = makeMachine(role: .client)
        var server = makeMachine()
        let first = try client.encodeFragment(ByteBuffer(string: "ab"), isText: true, fin: false, now: t0)
        #expect(throws: WebSocketError.fragmentedSendInProgress) { try client.encode(.text("other"), now: t0) }
        let ping = try client.encodeControl(.ping, payload: ByteBuffer(string: "p"))
        let last = try client.encodeFragment(ByteBuffer(string: "cd"), isText: true, fin: true, now: t0)
        #expect(decodeFrame(first)?.opcode == 1)
        #expect(decodeFrame(last)?.opcode == 0)
        let actions = server.feed(first, ping, last)
        #expect(actions.last == .message(.text("abcd")))
    }

    @Test func refusesOversizedControlFramesFromTheApplication() {
        var machine = makeMachine()
        #expect(throws: WebSocketError.controlFrameTooLarge(126)) {
            try machine.encodeControl(.ping, payload: ByteBuffer(repeating: 0, count: 126))
        }
    }
}
