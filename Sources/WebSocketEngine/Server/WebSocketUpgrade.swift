import NIOCore
import NIOHTTP1

/// An upgrade request as the application sees it, after the protocol checks passed.
public struct WebSocketUpgradeRequest: Sendable {
    /// The HTTP request head.
    public var head: HTTPRequestHead
    /// The path part of the request target (percent-encoding kept).
    public var path: String
    /// The query string without `?` (empty when none).
    public var query: String
    /// The peer's address.
    public var remoteAddress: SocketAddress?
    /// The local address the request came in on.
    public var localAddress: SocketAddress?
    /// Whether the request came over TLS.
    public var isSecure: Bool
    /// The subject of the client's TLS certificate (mutual TLS), when one was presented.
    public var clientCertificateSubject: String?
    /// The subprotocols the client offered, in its order.
    public var offeredSubprotocols: [String]
    /// The subprotocol the server would pick by its own preference order (overridable on accept).
    public var selectedSubprotocol: String?

    /// The request headers.
    public var headers: HTTPHeaders { self.head.headers }

    /// The first of `supported` (in that order of preference) that the client offered.
    public func firstOffered(of supported: [String]) -> String? {
        ServerHandshake.chooseSubprotocol(offered: self.offeredSubprotocols, supported: supported)
    }

    /// The query parameters, decoded (`+` as space, percent-escapes); later duplicates win.
    public var queryParameters: [String: String] {
        var result: [String: String] = [:]
        for pair in self.query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = PercentEncoding.decode(parts[0], plusAsSpace: true)
            result[name] = parts.count > 1 ? PercentEncoding.decode(parts[1], plusAsSpace: true) : ""
        }
        return result
    }
}

/// The application's answer to an upgrade request.
public enum WebSocketUpgradeDecision: Sendable {
    /// Accept: answer 101 and run the acceptance's handler with the connection.
    case accept(WebSocketAcceptance)
    /// Refuse with an HTTP status, headers and a plain-text body.
    case reject(WebSocketHandshakeRejection)
}

/// How an accepted connection is set up and served.
public struct WebSocketAcceptance: Sendable {
    /// The subprotocol to answer with; `nil` keeps the server's own choice
    /// (``WebSocketUpgradeRequest/selectedSubprotocol``).
    public var subprotocol: String?
    /// Answer without any subprotocol even if one would match.
    public var omitSubprotocol: Bool
    /// Extra headers for the 101 response.
    public var headers: HTTPHeaders
    /// Settings for this connection instead of the server's (limits, compression, keepalive...).
    public var connection: WebSocketConfiguration?
    /// Called on the connection's event loop once it exists, before the 101 response goes out (for example
    /// to register it where others can find it). Must not block.
    public var onInstalled: (@Sendable (WebSocket) -> Void)?
    /// Serves the connection; when it returns, a connection still open is closed with 1000.
    public var handler: @Sendable (WebSocket) async throws -> Void

    /// Creates an acceptance.
    public init(
        subprotocol: String? = nil,
        omitSubprotocol: Bool = false,
        headers: HTTPHeaders = [:],
        connection: WebSocketConfiguration? = nil,
        onInstalled: (@Sendable (WebSocket) -> Void)? = nil,
        handler: @escaping @Sendable (WebSocket) async throws -> Void
    ) {
        self.onInstalled = onInstalled
        self.subprotocol = subprotocol
        self.omitSubprotocol = omitSubprotocol
        self.headers = headers
        self.connection = connection
        self.handler = handler
    }
}

/// Percent-encoding and decoding of URL parts (RFC 3986 §2.1).
public enum PercentEncoding {
    /// Decodes `%XX` escapes (and `+` as a space when `plusAsSpace`, as in query strings); an invalid escape is
    /// kept as it is.
    public static func decode(_ text: Substring, plusAsSpace: Bool = false) -> String {
        guard text.contains("%") || (plusAsSpace && text.contains("+")) else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var rest = Array(text.utf8)[...]
        while let byte = rest.popFirst() {
            if plusAsSpace, byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), rest.count >= 2,
                let value = UInt8(String(decoding: rest.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                rest = rest.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Encodes every byte outside the unreserved set (`A-Z a-z 0-9 - . _ ~`) as `%XX`, for a path segment or a
    /// query name or value.
    public static func encode(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += byte < 16 ? "%0\(hex)" : "%\(hex)"
            }
        }
        return result
    }
}
