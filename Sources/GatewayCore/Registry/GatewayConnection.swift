import Atomics
import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import WebSocketEngine

/// A live connection in the gateway: the WebSocket plus its identity, groups, attributes and counters.
/// Safe to use from any task; the per-message path only touches atomics.
public final class GatewayConnection: Sendable {
    /// The connection's id.
    public let id: SocketID
    /// Inbound or outbound.
    public let type: SocketType
    /// The WebSocket itself.
    public let socket: WebSocket
    /// The route template (empty for outbound sockets without one).
    public let route: String
    let uri: String
    let path: String
    let headers: [String: String]
    let parameters: [String: String]
    let queryString: String
    let clientCertificate: String?
    let connectedAt: Int64
    let maxMessageSize: Int
    let slowConsumer: SlowConsumerPolicy
    let metrics: RouteMetrics

    private struct Mutable {
        var groups: Set<String>
        var attributes: [String: String]
    }

    private let mutable: NIOLockedValueBox<Mutable>
    private let messagesIn = ManagedAtomic<Int>(0)
    private let messagesOut = ManagedAtomic<Int>(0)
    private let bytesIn = ManagedAtomic<Int>(0)
    private let bytesOut = ManagedAtomic<Int>(0)
    private let lastActiveAt: ManagedAtomic<Int64>
    private let closing = ManagedAtomic<Bool>(false)

    init(
        id: SocketID,
        type: SocketType,
        socket: WebSocket,
        route: String,
        uri: String,
        path: String,
        parameters: [String: String],
        queryString: String,
        clientCertificate: String?,
        attributes: [String: String],
        maxMessageSize: Int,
        slowConsumer: SlowConsumerPolicy,
        metrics: RouteMetrics
    ) {
        self.metrics = metrics
        self.id = id
        self.type = type
        self.socket = socket
        self.route = route
        self.uri = uri
        self.path = path
        self.headers = Self.flatten(socket.request.headers)
        self.parameters = parameters
        self.queryString = queryString
        self.clientCertificate = clientCertificate
        let now = Self.epochMilliseconds()
        self.connectedAt = now
        self.lastActiveAt = ManagedAtomic(now)
        self.maxMessageSize = maxMessageSize
        self.slowConsumer = slowConsumer
        self.mutable = NIOLockedValueBox(Mutable(groups: [], attributes: attributes))
    }

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

    /// Whether the connection is open (not closing or closed).
    public var isOpen: Bool { !self.closing.load(ordering: .relaxed) && self.socket.isOpen }

    func markClosing() {
        self.closing.store(true, ordering: .relaxed)
    }

    /// Metadata for log lines about this connection.
    public var logMetadata: Logger.Metadata {
        [
            "socket_id": "\(self.id)", "route": "\(self.route)", "path": "\(self.path)",
            "remote_address": "\(self.socket.remoteAddress.map(Self.describe) ?? "-")",
        ]
    }

    /// The info record.
    public func info() -> ConnectionInfo {
        let mutable = self.mutable.withLockedValue { $0 }
        return ConnectionInfo(
            socketID: self.id, socketType: self.type, uri: self.uri, route: self.route, path: self.path,
            headers: self.headers, parameters: self.parameters, queryString: self.queryString,
            subprotocol: self.socket.subprotocol, secure: self.socket.isSecure,
            remoteAddress: self.socket.remoteAddress.map(Self.describe), localAddress: self.socket.localAddress.map(Self.describe),
            clientCertificate: self.clientCertificate, groups: mutable.groups.sorted(), attributes: mutable.attributes,
            connectedAt: self.connectedAt, lastActiveAt: self.lastActiveAt.load(ordering: .relaxed),
            state: self.isOpen ? "open" : "closing",
            messagesIn: self.messagesIn.load(ordering: .relaxed), messagesOut: self.messagesOut.load(ordering: .relaxed),
            bytesIn: self.bytesIn.load(ordering: .relaxed), bytesOut: self.bytesOut.load(ordering: .relaxed))
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    func countInbound(bytes: Int) {
        self.metrics.messagesIn.increment()
        self.metrics.bytesIn.increment(by: bytes)
        self.messagesIn.wrappingIncrement(ordering: .relaxed)
        self.bytesIn.wrappingIncrement(by: bytes, ordering: .relaxed)
        self.lastActiveAt.store(Self.epochMilliseconds(), ordering: .relaxed)
    }

    /// Sends a message, applying the message size limit and the slow-consumer policy.
    public func send(_ message: WebSocketMessage) async throws(GatewayError) {
        try await self.send(WebSocketPreparedMessage(message))
    }

    /// Sends a message prepared for many connections (see ``Gateway/broadcast(_:to:)``).
    public func send(_ prepared: WebSocketPreparedMessage) async throws(GatewayError) {
        guard prepared.size <= self.maxMessageSize else {
            throw .messageTooLarge(size: prepared.size, limit: self.maxMessageSize)
        }
        guard self.isOpen else { throw .socketNotOpen(self.id.rawValue) }
        // Counted before the send: the peer may have the message before this task resumes.
        self.countOutbound(bytes: prepared.size)
        do {
            try await self.socket.send(prepared)
        } catch {
            self.countOutbound(bytes: -prepared.size, messages: -1)
            let failure = GatewayError.sending(self.id, error)
            if failure.kind == "slow_consumer" {
                self.metrics.slowConsumer(self.slowConsumer)
                if self.slowConsumer == .close {
                    self.markClosing()
                    self.socket.startClose(code: .policyViolation, reason: "slow consumer")
                }
            }
            throw failure
        }
    }

    func countOutbound(bytes: Int, messages: Int = 1) {
        if messages > 0 {
            self.metrics.messagesOut.increment()
            self.metrics.bytesOut.increment(by: bytes)
        }
        self.messagesOut.wrappingIncrement(by: messages, ordering: .relaxed)
        self.bytesOut.wrappingIncrement(by: bytes, ordering: .relaxed)
        self.lastActiveAt.store(Self.epochMilliseconds(), ordering: .relaxed)
    }

    /// Closes the connection.
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") async throws(GatewayError) {
        self.markClosing()
        do {
            _ = try await self.socket.close(code: code, reason: reason)
        } catch {
            throw GatewayError(.send(self.id.rawValue, "\(error)"))
        }
    }
}
