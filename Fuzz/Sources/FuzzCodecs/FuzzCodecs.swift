import FuzzSupport
@_spi(Fuzzing) import GatewayCore
import NIOCore
import WebSocketEngine

// The message codecs and processors of routes (Sources/GatewayCore/Codecs): the input's messages go through a
// connection's decoder (preprocessors, then the format's check), through the codec's encoder, and through the
// bridge's correlation probe (a top-level JSON field).
//
// Input: three option bytes, then the messages, separated by 0xFF bytes (never part of valid UTF-8).
//   byte 0: the format (string, json, binary: n mod 3).
//   byte 1: the preprocessors: bits 0-1 how many (0-3), bits 2-4 each one's kind (0 lines, 1 base64).
//   byte 2: the same for the postprocessors, and bit 7 a small line limit (16 bytes) for `lines`.
//
// Checked: what the encoder produces, the decoder of the mirror codec (its preprocessors the encoder's
// postprocessors reversed) reads back as the message (when `lines` can carry it).

func processors(_ byte: UInt8) -> [MessageCodec.Processor] {
    (0..<Int(byte & 3)).map { index in (byte >> (2 + index)) & 1 == 0 ? .lines : .base64 }
}

func run(_ input: inout FuzzInput) {
    let format = MessageCodec.Format.allCases[Int(input.byte() % 3)]
    let pre = processors(input.byte())
    let postByte = input.byte()
    let post = processors(postByte)
    let maxBuffered = postByte & 0x80 != 0 ? 16 : 1 << 20
    let codec = MessageCodec(format: format, preprocessors: pre, postprocessors: post)
    var decoder = MessageDecoder(codec: codec, maxBuffered: maxBuffered)
    for part in input.parts(separatedBy: 0xFF) {
        let bytes = Array(part)
        _ = decoder.decode(bytes, socket: "s1")
        _ = CoreFuzzingHooks.jsonField("id", in: bytes)
        let message: WebSocketMessage = format == .binary ? .binary(ByteBuffer(bytes: bytes)) : .text(String(decoding: bytes, as: UTF8.self))
        guard case .success(let encoded) = codec.encode(message) else { continue }
        checkRoundTrip(message, encoded: encoded, codec: codec)
    }
}

/// The mirror codec's decoder reads `encoded` back as `message`, unless `lines` cannot carry it: a newline inside
/// or a carriage return at its end, or `lines` twice (the second splits records that have no newline left).
func checkRoundTrip(_ message: WebSocketMessage, encoded: WebSocketMessage, codec: MessageCodec) {
    let original = payload(message)
    let lines = codec.postprocessors.filter { $0 == .lines }.count
    guard lines <= 1 else { return }
    if lines == 1 {
        guard !original.contains(UInt8(ascii: "\n")), original.last != UInt8(ascii: "\r") else { return }
    }
    let mirror = MessageCodec(format: codec.format, preprocessors: codec.postprocessors.reversed())
    var decoder = MessageDecoder(codec: mirror, maxBuffered: 1 << 22)
    let outputs = decoder.decode(payload(encoded), socket: "s1")
    let expected: MessageDecoder.Output = codec.format == .binary ? .binary(ByteBuffer(bytes: original)) : .text(String(decoding: original, as: UTF8.self))
    fuzzCheck(outputs == [expected], "\(codec) encodes \(original) as \(payload(encoded)), read back as \(outputs)")
}

func payload(_ message: WebSocketMessage) -> [UInt8] {
    switch message {
    case .text(let text): return Array(text.utf8)
    case .binary(let buffer): return Array(buffer.readableBytesView)
    }
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    run(&input)
    return 0
}
