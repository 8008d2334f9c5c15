import DequeModule
import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import WebSocketEngine

/// Request and reply between a route's inbound connections and one outbound socket: each message from an inbound
/// connection goes to the outbound socket, and the upstream's reply comes back to the connection that sent the
/// request. Use ``requests`` as the route's handler and ``replies`` as the outbound socket's handler.
///
/// Replies are matched to requests in order (the upstream answers requests in the order it got them), or by a
/// top-level JSON field that the upstream copies from request to reply (`.jsonField("id")`). Either way the bridge
/// must be the only sender on the outbound socket, or a reply to someone else's message would be taken for a
/// request's: the socket is reserved for it (``GatewayHandler/exclusiveSender``), and the management API,
/// webhook answers and broadcasts get `socket_reserved` (409) instead of sending to it. A request without a
/// reply within ``timeout`` gets an error reply (`{"error":"timeout",...}`); a late reply to it is dropped. When the
/// upstream is unreachable or its connection is lost, pending requests get `{"error":"upstream_unavailable",...}`.
///
/// A bridge is a `Service`: put it in the gateway's ``GatewayConfiguration/services`` (or run it yourself) so that
/// its ``run()`` forwards the requests, in order, for as long as the gateway serves.
public final class BridgeFlow: Service, Sendable {
    /// How replies are matched to requests.
    public enum Correlation: Sendable, Hashable {
        /// The n-th reply answers the n-th request.
        case inOrder
        /// The reply carries the request's value of this top-level JSON field.
        case jsonField(String)
    }

    private struct Entry {
        var origin: SocketID
        var key: String?
        var serial: UInt64
        var expired = false
        var timer: Scheduled<Void>?
    }

    private struct State {
        var ordered: Deque<Entry> = []
        var keyed: [String: Entry] = [:]
        var serial: UInt64 = 0
        var count: Int { self.ordered.count + self.keyed.count }
    }

    private struct Request: Sendable {
        var origin: GatewayConnection
        var message: WebSocketMessage
        var gateway: Gateway
    }

    /// What ``run()`` does, one at a time: forward a request, or answer one with an error (a timeout).
    private enum Work: Sendable {
        case forward(Request)
        case answer(SocketID, error: String, message: String, Gateway)
    }

    /// The outbound socket's id.
    public let outbound: String
    /// How long a request waits for its reply.
    public let timeout: TimeAmount
    /// How replies are matched to requests.
    public let correlation: Correlation
    /// The most requests waiting for replies; more get `{"error":"busy",...}`.
    public let maxPending: Int
    private let state = NIOLockedValueBox(State())
    private let work: AsyncStream<Work>
    private let pump: AsyncStream<Work>.Continuation
    private let eventLoop: any EventLoop

    /// Creates a bridge to the outbound socket `outbound`.
    public init(outbound: String, timeout: TimeAmount = .seconds(10), correlation: Correlation = .inOrder, maxPending: Int = 1_024) {
        self.outbound = outbound
        self.timeout = timeout
        self.correlation = correlation
        self.maxPending = maxPending
        self.eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        (self.work, self.pump) = AsyncStream<Work>.makeStream()
    }

    deinit {
        self.pump.finish()
    }

    /// Forwards requests until cancelled. One task forwards them, so that the order of pending entries is the
    /// order on the upstream socket.
    public func run() async {
        for await work in self.work {
            switch work {
            case .forward(let request): await self.forward(request)
            case .answer(let origin, let error, let message, let gateway): await self.answer(origin, error, message, gateway)
            }
        }
    }

    /// The route side: forwards each message to the outbound socket.
    public var requests: some GatewayHandler { Requests(flow: self) }

    /// The outbound socket's side: sends each reply to the connection that made the request.
    public var replies: some GatewayHandler { Replies(flow: self) }

    /// Requests waiting for their reply (timed-out ones included until their late reply or expiry).
    public var pendingCount: Int { self.state.withLockedValue { $0.count } }

    private struct Requests: GatewayMessageHandler {
        let flow: BridgeFlow
        func onMessage(_ context: GatewayContext, _ message: WebSocketMessage) async { self.flow.submit(message, context) }
    }

    private struct Replies: GatewayMessageHandler {
        let flow: BridgeFlow
        var exclusiveSender: String? { "the bridge to \(self.flow.outbound)" }
        func onMessage(_ context: GatewayContext, _ message: WebSocketMessage) async { await self.flow.reply(message, context) }
        func onDisconnected(_ context: GatewayContext, code: UInt16, reason: String) async {
            await self.flow.failAll("upstream connection lost (\(code))", gateway: context.gateway)
        }
        func onClose(_ context: GatewayContext, code: UInt16, reason: String) async {
            await self.flow.failAll("upstream closed (\(code))", gateway: context.gateway)
        }
    }

    private func submit(_ message: WebSocketMessage, _ context: GatewayContext) {
        self.pump.yield(.forward(Request(origin: context.connection, message: message, gateway: context.gateway)))
    }

    private func forward(_ request: Request) async {
        let key: String?
        if case .jsonField(let field) = self.correlation {
            key = MessageCodec.jsonField(field, in: Self.bytes(request.message))
            guard key != nil else {
                return await self.answer(request.origin.id, "bad_request", "request has no JSON field '\(field)' to match its reply", request.gateway)
            }
        } else {
            key = nil
        }
        let origin = request.origin.id
        let gateway = request.gateway
        let registered: UInt64? = self.state.withLockedValue { state in
            guard state.count < self.maxPending else { return nil }
            if let key, state.keyed[key] != nil { return nil }
            state.serial &+= 1
            let serial = state.serial
            let timer = self.eventLoop.scheduleTask(in: self.timeout) { [weak self] () -> Void in
                self?.expire(serial: serial, key: key, gateway: gateway)
            }
            let entry = Entry(origin: origin, key: key, serial: serial, timer: timer)
            if let key { state.keyed[key] = entry } else { state.ordered.append(entry) }
            return serial
        }
        guard let serial = registered else {
            return await self.answer(origin, "busy", "too many requests waiting for upstream \(self.outbound) or a duplicate correlation value", gateway)
        }
        do {
            // Through the connection, not an action: the socket is reserved for this bridge (see `exclusiveSender`).
            try await gateway.connection(self.outbound).send(request.message)
        } catch {
            if self.remove(serial: serial, key: key) {
                await self.answer(origin, "upstream_unavailable", "\(error)", gateway)
            }
        }
    }

    private func reply(_ message: WebSocketMessage, _ context: GatewayContext) async {
        let entry: Entry? = self.state.withLockedValue { state in
            switch self.correlation {
            case .inOrder: return state.ordered.popFirst()
            case .jsonField(let field):
                guard let key = MessageCodec.jsonField(field, in: Self.bytes(message)) else { return nil }
                return state.keyed.removeValue(forKey: key)
            }
        }
        guard let entry, !entry.expired else {
            context.gateway.configuration.logger.warning(
                "bridge: reply without a waiting request, dropped", metadata: context.connection.logMetadata)
            return
        }
        entry.timer?.cancel()
        try? await context.gateway.send(entry.origin.rawValue, message)
    }

    /// A request's time is up: answer it, and keep an in-order entry as a placeholder for its late reply.
    private func expire(serial: UInt64, key: String?, gateway: Gateway) {
        let origin: SocketID? = self.state.withLockedValue { state in
            if let key {
                guard state.keyed[key]?.serial == serial else { return nil }
                return state.keyed.removeValue(forKey: key)?.origin
            }
            guard let index = state.ordered.firstIndex(where: { $0.serial == serial }), !state.ordered[index].expired else { return nil }
            state.ordered[index].expired = true
            return state.ordered[index].origin
        }
        guard let origin else { return }
        let seconds = Double(self.timeout.nanoseconds) / 1e9
        self.pump.yield(.answer(origin, error: "timeout", message: "no reply from upstream \(self.outbound) within \(seconds) s", gateway))
    }

    private func remove(serial: UInt64, key: String?) -> Bool {
        let entry: Entry? = self.state.withLockedValue { state in
            if let key, state.keyed[key]?.serial == serial { return state.keyed.removeValue(forKey: key) }
            guard let index = state.ordered.firstIndex(where: { $0.serial == serial }) else { return nil }
            return state.ordered.remove(at: index)
        }
        entry?.timer?.cancel()
        return entry.map { !$0.expired } ?? false
    }

    private func failAll(_ reason: String, gateway: Gateway) async {
        let entries: [Entry] = self.state.withLockedValue { state in
            defer {
                state.ordered = []
                state.keyed = [:]
            }
            return Array(state.ordered) + Array(state.keyed.values)
        }
        for entry in entries where !entry.expired {
            entry.timer?.cancel()
            await self.answer(entry.origin, "upstream_unavailable", reason, gateway)
        }
    }

    /// An error reply to a request: `{"error": kind, "message": …, "upstream": id}`.
    private struct ErrorReply: Encodable {
        var error: String
        var message: String
        var upstream: String
    }

    private func answer(_ origin: SocketID, _ error: String, _ message: String, _ gateway: Gateway) async {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(ErrorReply(error: error, message: message, upstream: self.outbound)) else { return }
        try? await gateway.send(origin.rawValue, .text(String(decoding: data, as: UTF8.self)))
    }

    private static func bytes(_ message: WebSocketMessage) -> [UInt8] {
        switch message {
        case .text(let text): return Array(text.utf8)
        case .binary(let data): return Array(data.readableBytesView)
        }
    }
}
