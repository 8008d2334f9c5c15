import FuzzSupport
@_spi(Fuzzing) import WebSocketEngine

// The Sec-WebSocket-Extensions parser and the permessage-deflate negotiation of both ends: the input's lines are
// the header values (one header per line), read as a server reads an offer and as a client reads an answer.
//
// Input: one option byte, then the header values, separated by newlines.
//   byte 0: bit 0 our no_context_takeover; bit 1 ask the peer for no_context_takeover; bits 2-4 our largest
//           window (8 + n); bit 5 ask the peer for a window of at most 9 + (bits 6-7) bits.
//
// Checked: every element parsed renders as a header value that parses back to itself; a server's answer is
// accepted by a client that offered the defaults; a client agrees only to what it asked for.

func run(_ input: inout FuzzInput) {
    let flags = input.byte()
    let configuration = PerMessageDeflateConfiguration(
        noContextTakeover: flags & 1 != 0,
        requestPeerNoContextTakeover: flags & 2 != 0,
        maxWindowBits: 8 + Int((flags >> 2) & 7),
        requestedPeerMaxWindowBits: flags & 0x20 != 0 ? 9 + Int(flags >> 6) : nil)
    let values = input.parts(separatedBy: UInt8(ascii: "\n")).map { String(decoding: $0, as: UTF8.self) }

    for case let rendered? in EngineFuzzingHooks.parseExtensions(values) {
        fuzzCheck(
            EngineFuzzingHooks.parseExtensions([rendered]) == [rendered],
            "the element '\(rendered)' does not parse back to itself")
    }

    // The server's side: the values are the client's offers.
    if let answer = EngineFuzzingHooks.acceptDeflateOffers(values, configuration: configuration) {
        checkWindows(answer)
        fuzzCheck(
            !configuration.noContextTakeover || answer.serverNoContextTakeover,
            "the answer drops our server_no_context_takeover")
        fuzzCheck((answer.serverMaxWindowBits ?? 15) <= configuration.maxWindowBits, "the answer allows a larger window than ours")
        switch EngineFuzzingHooks.checkDeflateAnswer([answer.headerValue], offered: PerMessageDeflateConfiguration()) {
        case .success(let agreed):
            fuzzCheck(agreed == answer, "the client agrees to \(String(describing: agreed)), not to \(answer)")
        case .failure(let error):
            fatalError("a default client refuses the answer '\(answer.headerValue)': \(error)")
        }
    }

    // The client's side: the values are the server's answer to our offer.
    if case .success(let agreed?) = EngineFuzzingHooks.checkDeflateAnswer(values, offered: configuration) {
        checkWindows(agreed)
        fuzzCheck(
            !configuration.requestPeerNoContextTakeover || agreed.serverNoContextTakeover,
            "agreed to a server that keeps its context after asking it not to")
        if let requested = configuration.requestedPeerMaxWindowBits {
            fuzzCheck((agreed.serverMaxWindowBits ?? 15) <= requested, "agreed to a larger server window than asked for")
        }
    }
    _ = EngineFuzzingHooks.checkDeflateAnswer(values, offered: nil)
}

func checkWindows(_ parameters: PerMessageDeflateParameters) {
    for bits in [parameters.serverMaxWindowBits, parameters.clientMaxWindowBits] {
        fuzzCheck(bits.map { (8...15).contains($0) } ?? true, "a window of \(bits ?? 0) bits in \(parameters)")
    }
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    run(&input)
    return 0
}
