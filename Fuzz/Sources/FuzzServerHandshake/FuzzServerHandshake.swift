import FuzzSupport
import NIOHTTP1
@_spi(Fuzzing) import WebSocketEngine

// The server's validation of upgrade requests: the bytes a client sends are read by SwiftNIO's request decoder
// (set up as the server sets it up), and every request head goes through the server's checks, its choice of
// subprotocol, its permessage-deflate negotiation and the headers of its 101.
//
// Input: one option byte, then the bytes from the client.
//   byte 0: bit 0 permessage-deflate enabled; bit 1 no_context_takeover of our own; bit 2 ask the client for
//           no_context_takeover; bits 3-5 our largest window (8 + n); bit 6 ask the client for a window of 10 bits;
//           bit 7 small request limits (64-byte URI, 256 bytes of headers).
//
// Checked for every accepted request: the answer carries the right Sec-WebSocket-Accept, and a client that offered
// permessage-deflate with default settings accepts the server's extension answer.

/// The subprotocols the server supports, in its order of preference.
let supported = ["chat.v2", "chat", "mqtt"]

func run(_ input: inout FuzzInput) {
    let flags = input.byte()
    let compression = flags & 1 == 0 ? nil : PerMessageDeflateConfiguration(
        noContextTakeover: flags & 2 != 0,
        requestPeerNoContextTakeover: flags & 4 != 0,
        maxWindowBits: 8 + Int((flags >> 3) & 7),
        requestedPeerMaxWindowBits: flags & 0x40 != 0 ? 10 : nil)
    let limits = flags & 0x80 != 0 ? WebSocketRequestLimits(maxURILength: 64, maxHeaderBytes: 256) : WebSocketRequestLimits()
    for head in HTTPParsing.requestHeads(input.rest) {
        switch EngineFuzzingHooks.answerUpgradeRequest(head, limits: limits, subprotocols: supported, compression: compression) {
        case .success(let headers):
            check(answer: headers, to: head, compression: compression)
        case .failure(let rejection):
            fuzzCheck(rejection.status.code >= 400, "a rejection with status \(rejection.status)")
            fuzzCheck(!rejection.reason.contains("\n"), "a rejection reason of more than one line")
        }
    }
}

/// The properties of an accepted request's 101 headers.
func check(answer headers: HTTPHeaders, to head: HTTPRequestHead, compression: PerMessageDeflateConfiguration?) {
    let key = trimmed(head.headers["sec-websocket-key"].first ?? "")
    fuzzCheck(
        headers["sec-websocket-accept"] == [EngineFuzzingHooks.acceptValue(forKey: key)],
        "the accept value does not answer the key '\(key)'")
    if let subprotocol = headers["sec-websocket-protocol"].first {
        fuzzCheck(supported.contains(subprotocol), "chose the unsupported subprotocol '\(subprotocol)'")
    }
    let extensions = headers["sec-websocket-extensions"]
    fuzzCheck(compression != nil || extensions.isEmpty, "answered with an extension while compression is off")
    guard !extensions.isEmpty else { return }
    // A client that offered the default permessage-deflate accepts any answer to any offer it may have made.
    let offered = PerMessageDeflateConfiguration()
    guard case .success(let parameters?) = EngineFuzzingHooks.checkDeflateAnswer(extensions, offered: offered) else {
        fatalError("a default client refuses the server's extension answer \(extensions)")
    }
    fuzzCheck(
        EngineFuzzingHooks.parseExtensions([parameters.headerValue]) == [parameters.headerValue],
        "the agreed parameters do not read back from '\(parameters.headerValue)'")
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    run(&input)
    return 0
}
