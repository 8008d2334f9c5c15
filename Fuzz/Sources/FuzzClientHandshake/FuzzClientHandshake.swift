import FuzzSupport
import NIOHTTP1
@_spi(Fuzzing) import WebSocketEngine

// The client's validation of the server's answer: the bytes a server sends back are read by SwiftNIO's response
// decoder (set up as the client sets it up, after the client's GET), and every response head goes through the
// client's checks: for a 101 the Upgrade, Connection and Sec-WebSocket-Accept headers, the chosen subprotocol and
// the permessage-deflate answer; for a redirect its Location (resolved against the URL) and its cookies.
//
// Input: one option byte, then the bytes from the server.
//   byte 0: bit 0 offer permessage-deflate; bit 1 ask for server_no_context_takeover; bit 2 ask for a server
//           window of at most 10 bits; bit 3 no_context_takeover of our own; bits 4-6 our largest window (8 + n);
//           bit 7 the URL is wss.
//
// Checked: an accepted answer agrees to what was offered, and a redirect leads to a URL that reads back as itself.

/// The key of every request: RFC 6455's example, answered by `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
let key = "dGhlIHNhbXBsZSBub25jZQ=="
/// The subprotocols the client offers.
let subprotocols = ["chat", "superchat"]

func run(_ input: inout FuzzInput) {
    let flags = input.byte()
    let compression = flags & 1 == 0 ? nil : PerMessageDeflateConfiguration(
        noContextTakeover: flags & 8 != 0,
        requestPeerNoContextTakeover: flags & 2 != 0,
        maxWindowBits: 8 + Int((flags >> 4) & 7),
        requestedPeerMaxWindowBits: flags & 4 != 0 ? 10 : nil)
    let url: WebSocketURL
    do {
        url = try WebSocketURL(flags & 0x80 == 0 ? "ws://example.com:8080/chat/room?x=1" : "wss://user:pw@example.com/a/b/c")
    } catch {
        fatalError("the base URL does not parse: \(error)")
    }
    var headers: HTTPHeaders = [
        "Host": url.hostHeader, "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": subprotocols.joined(separator: ", "),
    ]
    if let compression {
        headers.add(name: "Sec-WebSocket-Extensions", value: EngineFuzzingHooks.deflateOffer(compression))
    }
    let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.requestTarget, headers: headers)
    for head in HTTPParsing.responseHeads(input.rest, to: request) {
        let outcome = EngineFuzzingHooks.readUpgradeResponse(
            head, key: key, subprotocols: subprotocols, compression: compression, url: url)
        switch outcome {
        case .upgraded(let subprotocol, let parameters):
            fuzzCheck(head.status == .switchingProtocols, "upgraded on a \(head.status)")
            fuzzCheck(subprotocol.map(subprotocols.contains) ?? true, "agreed to the subprotocol '\(subprotocol ?? "")' not offered")
            fuzzCheck(compression != nil || parameters == nil, "agreed to compression not offered")
            if let parameters, let compression {
                fuzzCheck(
                    !compression.requestPeerNoContextTakeover || parameters.serverNoContextTakeover,
                    "agreed to a server keeping its context after asking it not to")
                if let requested = compression.requestedPeerMaxWindowBits {
                    fuzzCheck((parameters.serverMaxWindowBits ?? 15) <= requested, "agreed to a larger server window than asked for")
                }
                for bits in [parameters.serverMaxWindowBits, parameters.clientMaxWindowBits] {
                    fuzzCheck(bits.map { (8...15).contains($0) } ?? true, "agreed to a window of \(bits ?? 0) bits")
                }
            }
        case .redirected(let target, _):
            fuzzCheck([301, 302, 303, 307, 308].contains(head.status.code), "followed a \(head.status)")
            // The resolved URL is what the next request goes to: its text must describe the same URL.
            // (Its text leaves the user information out.)
            do {
                var again = try WebSocketURL(target.description)
                again.userinfo = target.userinfo
                fuzzCheck(again == target, "the redirect target \(target) reads back as \(again)")
            } catch {
                fatalError("the redirect target \(target) does not read back: \(error)")
            }
        case .refused:
            break
        }
    }
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    run(&input)
    return 0
}
