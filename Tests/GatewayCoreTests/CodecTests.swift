import GatewayCore
import GatewayTestKit
import NIOCore
import Testing
import WebSocketEngine
import WebSocketTestKit

@Suite("Codecs and processors")
struct CodecTests {
    @Test func linesAreSplitAcrossMessagesAndChecked() {
        var decoder = MessageDecoder(codec: MessageCodec(format: .json, preprocessors: [.lines]), maxBuffered: 64)
        #expect(decoder.decode(Array(#"{"a":1}"#.utf8) + [10] + Array(#"{"b":"#.utf8), socket: "s1") == [.text(#"{"a":1}"#)])
        #expect(decoder.decode(Array("2}\r\n[1,2]\n".utf8), socket: "s1") == [.text(#"{"b":2}"#), .text("[1,2]")])
        let bad = decoder.decode(Array("{oops}\n".utf8), socket: "s1")
        #expect(bad.count == 1)
        guard case .error(let reason) = bad[0] else { return }
        #expect(reason.hasPrefix("socket s1: invalid JSON"))
        #expect(decoder.decode(Array(repeating: UInt8(ascii: "x"), count: 65), socket: "s1") == [.error("socket s1: line longer than 64 bytes without a newline, discarded")])
    }

    @Test func base64DecodesToBinaryOrText() {
        var binary = MessageDecoder(codec: MessageCodec(format: .binary, preprocessors: [.base64]), maxBuffered: 1024)
        #expect(binary.decode(Array("AAEC/w==".utf8), socket: "s") == [.binary(ByteBuffer(bytes: [0, 1, 2, 255]))])
        #expect(binary.decode(Array("not base64!".utf8), socket: "s") == [.error("socket s: invalid base64 input (11 bytes)")])
        var text = MessageDecoder(codec: MessageCodec(format: .string, preprocessors: [.lines, .base64]), maxBuffered: 1024)
        #expect(text.decode(Array("aGk=\naGVsbG8=\n".utf8), socket: "s") == [.text("hi"), .text("hello")])
        #expect(text.decode(Array("/w==\n".utf8), socket: "s") == [.error("socket s: input is not valid UTF-8 text")])
    }

    @Test func encodingChecksTheFormatThenAppliesPostprocessors() throws {
        let json = MessageCodec(format: .json, postprocessors: [.lines])
        #expect(try json.encode(.text(#"{"ok":true}"#)).get() == .text("{\"ok\":true}\n"))
        #expect(throws: CodecError.self) { try json.encode(.text("{nope")).get() }
        let base64 = MessageCodec(format: .binary, postprocessors: [.base64])
        #expect(try base64.encode(.binary(ByteBuffer(bytes: [0, 1, 2, 255]))).get() == .text("AAEC/w=="))
        #expect(try MessageCodec(format: .binary).encode(.text("hi")).get() == .binary(ByteBuffer(string: "hi")))
        #expect(throws: CodecError.self) { try MessageCodec(format: .string).encode(.binary(ByteBuffer(bytes: [0xff]))).get() }
    }

    @Test func routeCodecTurnsBadInputIntoAnErrorEventAndKeepsTheConnection() async throws {
        let events = Mailbox<GatewayEvent.Kind>()
        let route = try GatewayRoute(
            path: "/json", handler: RecordingHandler(events: events), codec: MessageCodec(format: .json, preprocessors: [.lines]))
        try await withGateway(GatewayConfiguration(routes: [route])) { gateway, port in
            let client = try await connect(port, "/json")
            _ = try await events.next("open") { $0 == .open }
            try await client.send(text: "{\"n\":1}\n{\"n\":")
            #expect(try await events.next("record") { if case .text = $0 { true } else { false } }.0 == .text("{\"n\":1}"))
            #expect(try await client.receive() == .text("{\"n\":1}"))
            try await client.send(text: "2}\n{broken\n")
            #expect(try await events.next("record") { if case .text = $0 { true } else { false } }.0 == .text("{\"n\":2}"))
            let (error, _) = try await events.next("error") { if case .error = $0 { true } else { false } }
            guard case .error(let reason) = error else { return }
            let id = gateway.list()[0].rawValue
            #expect(reason.hasPrefix("socket \(id): invalid JSON"))
            #expect(try await client.receive() == .text("{\"n\":2}"))
            // Still open; a reply that is not JSON is refused by the codec on the way out.
            await #expect(throws: GatewayError.self) { try await gateway.send(id, .text("not json")) }
            try await client.send(text: "[3]\n")
            #expect(try await client.receive() == .text("[3]"))
            try await client.close()
        }
    }
}
