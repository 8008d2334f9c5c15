import NIOCore
import NIOHTTP1

/// Why a client could not open a WebSocket connection. New cases can be added without breaking users.
public struct WebSocketClientError: Error, Sendable, CustomStringConvertible {
    enum Base: Sendable {
        case invalidURL(String, reason: String)
        case unexpectedStatus(HTTPResponseStatus, HTTPHeaders, ByteBuffer?)
        case missingUpgradeHeader
        case missingConnectionHeader
        case invalidAccept(expected: String, received: String?)
        case unexpectedSubprotocol(String)
        case invalidExtensions(String)
        case handshakeTimeout
        case connectionClosedDuringHandshake
        case responseTooLarge(Int)
        case proxyRefused(HTTPResponseStatus, reason: String)
        case invalidProxy(String, reason: String)
        case tooManyRedirects(Int)
        case invalidRedirect(String, reason: String)
    }

    let base: Base

    init(_ base: Base) { self.base = base }

    static func invalidURL(_ url: String, reason: String) -> Self { Self(.invalidURL(url, reason: reason)) }
    static func unexpectedStatus(_ status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer?) -> Self {
        Self(.unexpectedStatus(status, headers, body))
    }
    static let missingUpgradeHeader = Self(.missingUpgradeHeader)
    static let missingConnectionHeader = Self(.missingConnectionHeader)
    static func invalidAccept(expected: String, received: String?) -> Self { Self(.invalidAccept(expected: expected, received: received)) }
    static func unexpectedSubprotocol(_ name: String) -> Self { Self(.unexpectedSubprotocol(name)) }
    static func invalidExtensions(_ reason: String) -> Self { Self(.invalidExtensions(reason)) }
    static let handshakeTimeout = Self(.handshakeTimeout)
    static let connectionClosedDuringHandshake = Self(.connectionClosedDuringHandshake)
    static func responseTooLarge(_ limit: Int) -> Self { Self(.responseTooLarge(limit)) }
    static func proxyRefused(_ status: HTTPResponseStatus, reason: String) -> Self { Self(.proxyRefused(status, reason: reason)) }
    static func invalidProxy(_ proxy: String, reason: String) -> Self { Self(.invalidProxy(proxy, reason: reason)) }
    static func tooManyRedirects(_ limit: Int) -> Self { Self(.tooManyRedirects(limit)) }
    static func invalidRedirect(_ location: String, reason: String) -> Self { Self(.invalidRedirect(location, reason: reason)) }

    /// The kinds of failure, for `switch`ing in applications and tests.
    public enum Kind: Sendable, Hashable {
        case invalidURL, unexpectedStatus, missingUpgradeHeader, missingConnectionHeader, invalidAccept
        case unexpectedSubprotocol, invalidExtensions, handshakeTimeout, connectionClosedDuringHandshake, responseTooLarge
        case proxyRefused, invalidProxy, tooManyRedirects, invalidRedirect
    }

    /// Which kind of failure this is.
    public var kind: Kind {
        switch self.base {
        case .invalidURL: return .invalidURL
        case .unexpectedStatus: return .unexpectedStatus
        case .missingUpgradeHeader: return .missingUpgradeHeader
        case .missingConnectionHeader: return .missingConnectionHeader
        case .invalidAccept: return .invalidAccept
        case .unexpectedSubprotocol: return .unexpectedSubprotocol
        case .invalidExtensions: return .invalidExtensions
        case .handshakeTimeout: return .handshakeTimeout
        case .connectionClosedDuringHandshake: return .connectionClosedDuringHandshake
        case .responseTooLarge: return .responseTooLarge
        case .proxyRefused: return .proxyRefused
        case .invalidProxy: return .invalidProxy
        case .tooManyRedirects: return .tooManyRedirects
        case .invalidRedirect: return .invalidRedirect
        }
    }

    /// The status of a refusal: the server's answer that was not 101 Switching Protocols, or the proxy's answer
    /// to `CONNECT` that was not 2xx.
    public var status: HTTPResponseStatus? {
        switch self.base {
        case .unexpectedStatus(let status, _, _), .proxyRefused(let status, _): return status
        default: return nil
        }
    }

    /// The headers of a response that was not 101 Switching Protocols.
    public var responseHeaders: HTTPHeaders? {
        if case .unexpectedStatus(_, let headers, _) = self.base { return headers }
        return nil
    }

    /// The body of a response that was not 101 Switching Protocols.
    public var responseBody: ByteBuffer? {
        if case .unexpectedStatus(_, _, let body) = self.base { return body }
        return nil
    }

    public var description: String {
        switch self.base {
        case .invalidURL(let url, let reason): return "invalid WebSocket URL '\(url)': \(reason)"
        case .unexpectedStatus(let status, _, let body):
            let text = body.map { String(buffer: $0) } ?? ""
            return "server answered \(status.code) \(status.reasonPhrase) instead of 101\(text.isEmpty ? "" : ": \(text)")"
        case .missingUpgradeHeader: return "server response lacks Upgrade: websocket"
        case .missingConnectionHeader: return "server response lacks Connection: Upgrade"
        case .invalidAccept(let expected, let received):
            return "Sec-WebSocket-Accept is \(received.map { "'\($0)'" } ?? "missing"), expected '\(expected)'"
        case .unexpectedSubprotocol(let name): return "server chose subprotocol '\(name)' that was not offered"
        case .invalidExtensions(let reason): return "invalid Sec-WebSocket-Extensions answer: \(reason)"
        case .handshakeTimeout: return "the opening handshake timed out"
        case .connectionClosedDuringHandshake: return "the connection closed during the opening handshake"
        case .responseTooLarge(let limit): return "the handshake response exceeded \(limit) bytes"
        case .proxyRefused(let status, let reason):
            let why = status == .proxyAuthenticationRequired ? " (proxy authentication required)" : ""
            return "the proxy refused the tunnel with \(status.code) \(reason)\(why)"
        case .invalidProxy(let proxy, let reason): return "invalid proxy '\(proxy)': \(reason)"
        case .tooManyRedirects(let limit): return "more than \(limit) redirect\(limit == 1 ? "" : "s")"
        case .invalidRedirect(let location, let reason): return "invalid redirect to '\(location)': \(reason)"
        }
    }
}
