/// The permessage-deflate parameters agreed in a handshake (RFC 7692 §7.1), as written in the server's answer.
public struct PerMessageDeflateParameters: Sendable, Hashable {
    /// The server resets its compression context after every message.
    public var serverNoContextTakeover: Bool = false
    /// The client resets its compression context after every message.
    public var clientNoContextTakeover: Bool = false
    /// The largest window the server compresses with (`nil`: 15).
    public var serverMaxWindowBits: Int? = nil
    /// The largest window the client compresses with (`nil`: 15).
    public var clientMaxWindowBits: Int? = nil

    /// Creates parameters; all defaults mean "context takeover, 15-bit windows".
    public init(
        serverNoContextTakeover: Bool = false,
        clientNoContextTakeover: Bool = false,
        serverMaxWindowBits: Int? = nil,
        clientMaxWindowBits: Int? = nil
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// The `Sec-WebSocket-Extensions` value of the answer.
    public var headerValue: String {
        var parameters: [(name: String, value: String?)] = []
        if self.serverNoContextTakeover { parameters.append(("server_no_context_takeover", nil)) }
        if self.clientNoContextTakeover { parameters.append(("client_no_context_takeover", nil)) }
        if let bits = self.serverMaxWindowBits { parameters.append(("server_max_window_bits", String(bits))) }
        if let bits = self.clientMaxWindowBits { parameters.append(("client_max_window_bits", String(bits))) }
        return WebSocketExtensionElement(name: PerMessageDeflateNegotiation.name, parameters: parameters).headerValue
    }
}

/// Why a server's extension answer is unacceptable.
struct NegotiationFailure: Error, Hashable {
    var reason: String
}

/// The negotiation rules of RFC 7692 §7.1 for both ends.
enum PerMessageDeflateNegotiation {
    static let name = "permessage-deflate"

    /// The parameters of one offer, or `nil` when the offer breaks RFC 7692 (unknown or repeated parameter, bad value).
    private struct Offer {
        var serverNoContextTakeover = false
        var clientNoContextTakeover = false
        var serverMaxWindowBits: Int?
        /// `.some(nil)`: the parameter was present without a value.
        var clientMaxWindowBits: Int??

        init?(_ element: WebSocketExtensionElement, isAnswer: Bool) {
            var seen = Set<String>()
            for (name, value) in element.parameters {
                guard seen.insert(name).inserted else { return nil }
                switch name {
                case "server_no_context_takeover":
                    guard value == nil else { return nil }
                    self.serverNoContextTakeover = true
                case "client_no_context_takeover":
                    guard value == nil else { return nil }
                    self.clientNoContextTakeover = true
                case "server_max_window_bits":
                    guard let bits = value.flatMap(Self.windowBits) else { return nil }
                    self.serverMaxWindowBits = bits
                case "client_max_window_bits":
                    if let value {
                        guard let bits = Self.windowBits(value) else { return nil }
                        self.clientMaxWindowBits = .some(bits)
                    } else {
                        // Only an offer may leave the value out ("I can limit my window if you ask").
                        guard !isAnswer else { return nil }
                        self.clientMaxWindowBits = .some(nil)
                    }
                default:
                    return nil
                }
            }
        }

        private static func windowBits(_ text: String) -> Int? {
            // RFC 7692 §7.1.2: 1*DIGIT without leading zeros, 8 to 15.
            guard !text.hasPrefix("0"), let bits = Int(text), (8...15).contains(bits) else { return nil }
            return bits
        }
    }

    /// Server side: the answer to the first acceptable permessage-deflate offer, or `nil` to decline them all.
    static func accept(
        offers: [WebSocketExtensionElement?],
        configuration: PerMessageDeflateConfiguration
    ) -> PerMessageDeflateParameters? {
        for case let element? in offers where element.name == Self.name {
            guard let offer = Offer(element, isAnswer: false) else { continue }
            var answer = PerMessageDeflateParameters()
            answer.serverNoContextTakeover = offer.serverNoContextTakeover || configuration.noContextTakeover
            answer.clientNoContextTakeover = offer.clientNoContextTakeover || configuration.requestPeerNoContextTakeover
            if let requested = offer.serverMaxWindowBits {
                answer.serverMaxWindowBits = min(requested, configuration.maxWindowBits)
            } else if configuration.maxWindowBits < 15 {
                answer.serverMaxWindowBits = configuration.maxWindowBits
            }
            if let clientBits = offer.clientMaxWindowBits, let wanted = configuration.requestedPeerMaxWindowBits {
                answer.clientMaxWindowBits = min(wanted, clientBits ?? 15)
            }
            return answer
        }
        return nil
    }

    /// Client side: the offer to send.
    static func offer(configuration: PerMessageDeflateConfiguration) -> WebSocketExtensionElement {
        var parameters: [(name: String, value: String?)] = []
        if configuration.noContextTakeover { parameters.append(("client_no_context_takeover", nil)) }
        if configuration.requestPeerNoContextTakeover { parameters.append(("server_no_context_takeover", nil)) }
        if let bits = configuration.requestedPeerMaxWindowBits {
            parameters.append(("server_max_window_bits", String(bits)))
        }
        // Always let the server limit our window; say our own limit when we have one.
        parameters.append(("client_max_window_bits", configuration.maxWindowBits < 15 ? String(configuration.maxWindowBits) : nil))
        return WebSocketExtensionElement(name: Self.name, parameters: parameters)
    }

    /// Client side: checks the server's answer against what was offered.
    ///
    /// - Returns: the agreed parameters (`nil`: no extension), or a reason to fail the connection.
    static func validate(
        answer: [WebSocketExtensionElement?],
        offered configuration: PerMessageDeflateConfiguration?
    ) -> Result<PerMessageDeflateParameters?, NegotiationFailure> {
        guard !answer.isEmpty else { return .success(nil) }
        guard answer.count == 1, let element = answer[0] else {
            return .failure(NegotiationFailure(reason: "the server answered with extensions that were not offered"))
        }
        guard element.name == Self.name, let configuration else {
            return .failure(NegotiationFailure(reason: "the server answered with extension '\(element.name)' that was not offered"))
        }
        guard let parsed = Offer(element, isAnswer: true) else {
            return .failure(NegotiationFailure(reason: "invalid permessage-deflate answer '\(element.headerValue)'"))
        }
        if configuration.requestPeerNoContextTakeover, !parsed.serverNoContextTakeover {
            return .failure(NegotiationFailure(reason: "the server ignored server_no_context_takeover"))
        }
        if let requested = configuration.requestedPeerMaxWindowBits {
            guard let bits = parsed.serverMaxWindowBits, bits <= requested else {
                return .failure(NegotiationFailure(reason: "the server answered without a server_max_window_bits of at most \(requested)"))
            }
        }
        var parameters = PerMessageDeflateParameters()
        parameters.serverNoContextTakeover = parsed.serverNoContextTakeover
        parameters.clientNoContextTakeover = parsed.clientNoContextTakeover
        parameters.serverMaxWindowBits = parsed.serverMaxWindowBits
        if case .some(.some(let bits)) = parsed.clientMaxWindowBits {
            parameters.clientMaxWindowBits = bits
        }
        return .success(parameters)
    }
}
