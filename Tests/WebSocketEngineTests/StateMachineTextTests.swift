import NIOCore
import Testing
@testable import WebSocketEngine

@Suite("UTF-8 validation (RFC 6455 §8.1)")
struct UTF8Tests {
    @Test(arguments: [
        "", "hello", "κόσμε", "€", "𝄞 music", "\u{FFFF}", "\u{10FFFF}", String(repeating: "a", count: 100),
    ])
    func acceptsValidText(_ string: String) {
        var validator = UTF8Validator()
        let valid = validator.validate(bytes: Array(string.utf8))
        #expect(valid && validator.isAtBoundary)
    }

    @Test(arguments: [
        [0xC0, 0x80],  // overlong NUL
        [0xE0, 0x80, 0x80],  // overlong
        [0xED, 0xA0, 0x80],  // surrogate U+D800
        [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
        [0xF5],  // never valid
        [0x80],  // lone continuation
        [0xCE, 0xBA, 0xFF],
    ] as [[UInt8]])
    func rejectsInvalidText(_ bytes: [UInt8]) {
        var validator = UTF8Validator()
        let valid = validator.validate(bytes: bytes)
        #expect(!valid)
    }

    @Test func validatesAcrossChunksAndReportsIncompleteSequences() {
        var validator = UTF8Validator()
        let bytes = Array("€".utf8)
        let first = validator.validate(bytes: bytes[0..<1])
        #expect(first && !validator.isAtBoundary)
        let rest = validator.validate(bytes: bytes[1...])
        #expect(rest && validator.isAtBoundary)
    }

    @Test func failsFastInsideAFrameThatIsStillArriving() {
        // 6.4.3-style: one frame, the invalid byte arrives before the rest of the payload.
        var machine = makeMachine()
        let payload: [UInt8] = Array("κόσμε".utf8) + [0xF4, 0x90, 0x80, 0x80] + Array("edited".utf8)
        let whole = frame(1, payload)
        let header = 6
        var first = whole.getSlice(at: 0, length: header + 11)!
        #expect(machine.feed(first) == [])
        first = whole.getSlice(at: header + 11, length: 2)!
        #expect(machine.feed(first) == [violation(.invalidFramePayloadData, "text message is not valid UTF-8")])
    }

    @Test func failsFastAcrossFragments() {
        var machine = makeMachine()
        #expect(machine.feed(frame(1, Array("ok".utf8), fin: false)) == [])
        #expect(machine.feed(frame(0, [0xC0], fin: false)) == [violation(.invalidFramePayloadData, "text message is not valid UTF-8")])
    }

    @Test func rejectsAMessageEndingInsideASequence() {
        var machine = makeMachine()
        #expect(machine.feed(frame(1, [0xE2, 0x82])) == [violation(.invalidFramePayloadData, "text message ends inside a UTF-8 sequence")])
    }

    @Test func binaryIsNotValidated() {
        var machine = makeMachine()
        #expect(machine.feed(frame(2, [0xFF, 0xC0])) == [.message(.binary(ByteBuffer(bytes: [0xFF, 0xC0])))])
    }
}
