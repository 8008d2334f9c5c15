import CoreMetrics
import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import WebSocketEngine

/// A live connection in the gateway: the WebSocket plus its identity, groups, attributes and counters.
/// Safe to use from any task; the per-message path only touches atomics.
///
/// An outbound socket keeps its `GatewayConnection` (id, groups, attributes, counters) across reconnections; only
/// its ``socket`` changes, and messages sent while it reconnects wait in its queue.
public final class GatewayConnection: Sendable {
    /// The connection's id.
    public let id: SocketID
    /// Inbound or outbound.
    public let type: SocketType
    /// The route template (empty for outbound sockets).
    public let route: String
    let uri: String
    let path: String
    /// The request's headers as received (shared with the socket's request, not copied).
    private let requestHeaders: HTTPHeaders
    let parameters: [String: String]
    let queryString: String
    let clientCertificate: String?
    let connectedAt: Int64
    let maxMessageSize: Int
    let slowConsumer: SlowConsumerPolicy
    let metrics: RouteMetrics
    /// How messages are decoded and encoded; `nil` passes them through.
    public let codec: MessageCodec?
    /// The reconnecting side of an outbound socket.
    let link: OutboundLink?
    /// The one sender of this socket's messages (its handler's ``GatewayHandler/exclusiveSender``, e.g. a bridge):
    /// actions that send to it are refused with `socket_reserved`. Its handler sends through the connection.
    public let reservedFor: String?
    private let inboundSocket: WebSocket?

    /// Everything that changes, behind one lock (one allocation per connection instead of one per counter).
    private struct Mutable {
        var groups: Set<String>
        var attributes: [String: String]
        var messagesIn = 0
        var messagesOut = 0
        var bytesIn = 0
        var bytesOut = 0
        var lastActiveAt: Int64
        var closing = false
    }

    private let mutable: NIOLockedValueBox<Mutable>

    init(
        id: SocketID,
        type: SocketType,
        socket: WebSocket?,
        link: OutboundLink? = nil,
        route: String,
        uri: String,
        path: String,
        headers: HTTPHeaders,
        parameters: [String: String],
        queryString: String,
        clientCertificate: String?,
        attributes: [String: String],
        maxMessageSize: Int,
        slowConsumer: SlowConsumerPolicy,
        codec: MessageCodec? = nil,
        reservedFor: String? = nil,
        metrics: RouteMetrics
    ) {
        self.metrics = metrics
        self.reservedFor = reservedFor
        self.id = id
        self.type = type
        self.inboundSocket = socket
        self.link = link
        self.route = route
        self.uri = uri
        self.path = path
        self.requestHeaders = headers
        self.parameters = parameters
        self.queryString = queryString
        self.clientCertificate = clientCertificate
        let now = Self.epochMilliseconds()
        self.connectedAt = now
        self.maxMessageSize = maxMessageSize
        self.slowConsumer = slowConsumer
        self.codec = codec
        self.mutable = NIOLockedValueBox(Mutable(groups: [], attributes: attributes, lastActiveAt: now))
    }

    /// The WebSocket: for an outbound socket the current (or last) connection, `nil` before its first one.
    public var socket: WebSocket? { self.link?.socket ?? self.inboundSocket }

    /// The request's headers as a map of lowercased names (made when asked for, not kept per connection).
    var headers: [String: String] { Self.flatten(self.requestHeaders) }

    /// Headers as a map of lowercased names; repeated headers are joined with ", ".
    static func flatten(_ headers: HTTPHeaders) -> [String: String] {
        var result: [String: String] = [:]
        for (name, value) in headers {
            let key = name.lowercased()
            result[key] = result[key].map { "\($0), \(value)" } ?? value
        }
        return result
    }

    /// Milliseconds since the epoch, now.
    static func epochMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }

    /// The groups the connection belongs to.
    public var groups: Set<String> { self.mutable.withLockedValue { $0.groups } }

    /// The connection's attributes.
    public var attributes: [String: String] { self.mutable.withLockedValue { $0.attributes } }

    /// Sets (or with `nil` removes) an attribute.
    public func setAttribute(_ name: String, _ value: String?) {
        self.mutable.withLockedValue { $0.attributes[name] = value }
    }

    /// Adds a group; returns whether it was new. The registry's group index is updated by the caller.
    func insertGroup(_ group: String) -> Bool {
        self.mutable.withLockedValue { $0.groups.insert(group).inserted }
    }

    /// Removes a group; returns whether it was there.
    func removeGroup(_ group: String) -> Bool {
        self.mutable.withLockedValue { $0.groups.remove(group) != nil }
    }

    /// Whether the connection is open (not closing or closed; for an outbound socket, connected right now).
    public var isOpen: Bool {
        guard !self.mutable.withLockedValue({ $0.closing }) else { return false }
        if let link = self.link { return link.isConnected && (link.socket?.isOpen ?? false) }
        return self.inboundSocket?.isOpen ?? false
    }

    /// Messages waiting for an outbound socket's (re)connection, in its queue; 0 for inbound connections.
    public var queuedMessages: Int { self.link?.queuedCount ?? 0 }

    /// Whether the connection is closing or closed for good (an outbound socket that reconnects is not).
    public var isClosing: Bool { self.mutable.withLockedValue { $0.closing } || (self.link?.isStopped ?? false) }

    func markClosing() {
        self.mutable.withLockedValue { $0.closing = true }
    }

    /// The state shown in `info`: `open`, `closing`, or for an outbound socket `connecting` / `reconnecting`.
    var state: String {
        if self.mutable.withLockedValue({ $0.closing }) { return "closing" }
        if let link = self.link {
            switch link.phase {
            case .open: return (link.socket?.isOpen ?? false) ? "open" : "reconnecting"
            case .closed: return "closing"
            case .connecting, .reconnecting: return link.phase.rawValue
            }
        }
        return self.isOpen ? "open" : "closing"
    }

    /// Starts the closing handshake without waiting; an outbound socket stops reconnecting.
    public func startClose(code: WebSocketCloseCode = .normalClosure, reason: String = "") {
        self.markClosing()
        self.link?.stop(failing: .socketNotOpen(self.id.rawValue))
        self.socket?.startClose(code: code, reason: reason)
    }

    /// Metadata for log lines about this connection.
    public var logMetadata: Logger.Metadata {
        [
            "socket_id": "\(self.id)", "route": "\(self.route)", "path": "\(self.path)",
            "remote_address": "\(self.socket?.remoteAddress.map(Self.describe) ?? "-")",
        ]
    }

    /// The info record.
    public func info() -> ConnectionInfo {
        let mutable = self.mutable.withLockedValue { $0 }
        let socket = self.socket
        return ConnectionInfo(
            socketID: self.id, socketType: self.type, uri: self.uri, route: self.route, path: self.path,
            headers: self.headers, parameters: self.parameters, queryString: self.queryString,
            subprotocol: socket?.subprotocol, compression: socket?.compression.map(CompressionInfo.init), secure: socket?.isSecure ?? self.uri.lowercased().hasPrefix("wss:"),
            remoteAddress: socket?.remoteAddress.map(Self.describe), localAddress: socket?.localAddress.map(Self.describe),
            clientCertificate: self.clientCertificate, groups: mutable.groups.sorted(), attributes: mutable.attributes,
            connectedAt: self.connectedAt, lastActiveAt: mutable.lastActiveAt,
            state: self.state,
            messagesIn: mutable.messagesIn, messagesOut: mutable.messagesOut,
            bytesIn: mutable.bytesIn, bytesOut: mutable.bytesOut,
            wireBytesIn: socket?.wireBytesReceived ?? 0, wireBytesOut: socket?.wireBytesSent ?? 0)
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    func countInbound(bytes: Int) {
        self.metrics.messagesIn.increment()
        self.metrics.bytesIn.increment(by: bytes)
        let now = Self.epochMilliseconds()
        self.mutable.withLockedValue {
            $0.messagesIn &+= 1
            $0.bytesIn &+= bytes
            $0.lastActiveAt = now
        }
    }

    /// Sends a message, applying the codec, the message size limit and the slow-consumer policy. An outbound socket
    /// that is reconnecting queues it (the call returns once it is sent after the reconnection, or fails).
    public func send(_ message: WebSocketMessage) async throws(GatewayError) {
        try await self.send(Outgoing.message(try self.encode(message)))
    }

    /// Applies the codec to an outgoing message.
    func encode(_ message: WebSocketMessage) throws(GatewayError) -> WebSocketMessage {
        guard let codec = self.codec else { return message }
        switch codec.encode(message) {
        case .success(let encoded): return encoded
        case .failure(let error): throw .invalidMessage(self.id.rawValue, reason: error.reason)
        }
    }

    /// Sends a message prepared for many connections (see ``Gateway/broadcast(_:to:excluding:)``); the codec is
    /// not applied.
    public func send(_ prepared: WebSocketPreparedMessage) async throws(GatewayError) {
        try await self.send(Outgoing.prepared(prepared))
    }

    /// Sends `message` at once, without suspending, when called on the connection's event loop (as from
    /// ``GatewayHandler/handleNow(_:_:)``) and it can leave without waiting. Otherwise it sends nothing and returns
    /// `false`: then use ``send(_:)`` (an outbound socket always needs it: its sends are ordered across
    /// reconnections).
    ///
    /// - Throws: what ``send(_:)`` throws when the message cannot be sent at all.
    public func sendNow(_ message: WebSocketMessage) throws(GatewayError) -> Bool {
        guard self.link == nil else { return false }
        let encoded = try self.encode(message)
        let outgoing = Outgoing.message(encoded)
        try self.checkSendable(outgoing)
        let socket = try self.openInboundSocket()
        do {
            guard try socket.trySend(encoded) else { return false }
        } catch {
            throw .sending(self.id, error)
        }
        // Counted after the write (from a read, the flush comes at read-complete; elsewhere the peer may have the
        // message a moment before it is counted).
        self.countOutbound(bytes: outgoing.size)
        return true
    }

    /// The inbound connection's socket, if it is still open.
    private func openInboundSocket() throws(GatewayError) -> WebSocket {
        guard let socket = self.inboundSocket, socket.isOpen else { throw .socketNotOpen(self.id.rawValue) }
        return socket
    }

    /// Throws when `outgoing` cannot be sent on this connection at all.
    private func checkSendable(_ outgoing: Outgoing) throws(GatewayError) {
        guard outgoing.size <= self.maxMessageSize else {
            throw .messageTooLarge(size: outgoing.size, limit: self.maxMessageSize)
        }
        guard !self.mutable.withLockedValue({ $0.closing }) else { throw .socketNotOpen(self.id.rawValue) }
    }

    private func send(_ outgoing: Outgoing) async throws(GatewayError) {
        try self.checkSendable(outgoing)
        let socket: WebSocket
        if let link = self.link {
            switch await link.submit(outgoing) {
            case .direct(let current): socket = current
            case .done(let result): return try result.get()
            }
        } else {
            socket = try self.openInboundSocket()
        }
        try await self.transmit(outgoing, on: socket).get()
    }

    /// Writes a message to one WebSocket of this connection, counting it and applying the slow-consumer policy.
    func transmit(_ outgoing: Outgoing, on socket: WebSocket) async -> Result<Void, GatewayError> {
        // Counted before the send: the peer may have the message before this task resumes.
        self.countOutbound(bytes: outgoing.size)
        do {
            switch outgoing {
            case .message(let message): try await socket.send(message)
            case .prepared(let prepared): try await socket.send(prepared)
            }
            return .success(())
        } catch {
            self.countOutbound(bytes: -outgoing.size, messages: -1)
            let failure = GatewayError.sending(self.id, error)
            if failure.kind == .slowConsumer {
                self.metrics.slowConsumer(self.slowConsumer)
                if self.slowConsumer == .close {
                    self.markClosing()
                    socket.startClose(code: .policyViolation, reason: "slow consumer")
                }
            }
            return .failure(failure)
        }
    }

    func countOutbound(bytes: Int, messages: Int = 1) {
        if messages > 0 {
            self.metrics.messagesOut.increment()
            self.metrics.bytesOut.increment(by: bytes)
        }
        let now = Self.epochMilliseconds()
        self.mutable.withLockedValue {
            $0.messagesOut &+= messages
            $0.bytesOut &+= bytes
            $0.lastActiveAt = now
        }
    }

    /// Closes the connection (an outbound socket stops reconnecting).
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") async throws(GatewayError) {
        self.markClosing()
        self.link?.stop(failing: .socketNotOpen(self.id.rawValue))
        guard let socket = self.socket, socket.isOpen else { return }
        do {
            _ = try await socket.close(code: code, reason: reason)
        } catch {
            throw .sendFailed(self.id.rawValue, reason: "\(error)")
        }
    }
}

/// A message on its way to one connection: as it is, or prepared for many.
enum Outgoing: Sendable {
    case message(WebSocketMessage)
    case prepared(WebSocketPreparedMessage)

    /// The payload size.
    var size: Int {
        switch self {
        case .message(.text(let text)): return text.utf8.count
        case .message(.binary(let data)): return data.readableBytes
        case .prepared(let prepared): return prepared.size
        }
    }
}
