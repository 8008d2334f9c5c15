import DequeModule
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import WebSocketEngine

/// The reconnecting side of an outbound socket: the current WebSocket, the phase, the messages waiting for a
/// connection (in order), and the cancellable wait between attempts. The attempts themselves are driven by the
/// socket's event sequence (``GatewayEvents``), so every attempt is an event in order with the messages.
final class OutboundLink: Sendable {
    /// Where the socket is in its life.
    enum Phase: String, Sendable {
        case connecting, open, reconnecting, closed
    }

    /// How a send goes out.
    enum SendPath: Sendable {
        /// Straight onto this WebSocket.
        case direct(WebSocket)
        /// It was queued and has since been sent, or failed.
        case done(Result<Void, GatewayError>)
    }

    private struct Pending {
        var outgoing: Outgoing
        var continuation: CheckedContinuation<SendPath, Never>?
    }

    private struct State {
        var socket: WebSocket?
        var phase = Phase.connecting
        var queue: Deque<Pending> = []
        /// Queued messages are being sent after a reconnection; new sends queue behind them.
        var flushing = false
        var stopped = false
        var sleeper: (continuation: CheckedContinuation<Bool, Never>, timer: Scheduled<Void>?)?
    }

    let id: SocketID
    let url: String
    let client: WebSocketClientConfiguration
    let strategy: ReconnectStrategy
    let queuePolicy: ReconnectQueuePolicy
    private let state = NIOLockedValueBox(State())
    private let eventLoop: any EventLoop
    /// Where the socket's disconnections, reconnections and failed attempts are logged.
    let logger: Logger

    init(
        id: SocketID, url: String, client: WebSocketClientConfiguration, strategy: ReconnectStrategy, queue: ReconnectQueuePolicy,
        logger: Logger
    ) {
        self.logger = logger
        self.id = id
        self.url = url
        self.client = client
        self.strategy = strategy
        self.queuePolicy = queue
        self.eventLoop = MultiThreadedEventLoopGroup.singleton.any()
    }

    /// The current (or last) WebSocket.
    var socket: WebSocket? { self.state.withLockedValue { $0.socket } }

    /// The phase, as shown in `info`.
    var phase: Phase { self.state.withLockedValue { $0.phase } }

    /// Whether sends go straight to the socket (connected, nothing queued ahead).
    var isConnected: Bool { self.state.withLockedValue { $0.phase == .open && !$0.flushing && !$0.stopped } }

    /// Messages waiting for a connection.
    var queuedCount: Int { self.state.withLockedValue { $0.queue.count } }

    /// Whether the socket was closed deliberately (or gave up): no more attempts.
    var isStopped: Bool { self.state.withLockedValue { $0.stopped } }

    /// The outcome of one connect attempt.
    enum ConnectOutcome: Sendable {
        case connected(WebSocket)
        case failed(String)
    }

    /// One connection attempt.
    func connect(attempt: Int) async -> ConnectOutcome {
        Self.count(self.id, "attempt")
        do {
            let socket = try await WebSocketClient.connect(to: self.url, configuration: self.client)
            Self.count(self.id, "success")
            return .connected(socket)
        } catch {
            Self.count(self.id, "failure")
            return .failed(Self.describe(error))
        }
    }

    /// Why a connect attempt failed, for the API, the logs and handlers: a refused upgrade is its status and
    /// standard reason phrase, never the target's body or its own phrase (they may carry anything the target serves).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? WebSocketClientError, error.kind == .unexpectedStatus, let status = error.status else {
            return "\(error)"
        }
        let phrase = HTTPResponseStatus(statusCode: Int(status.code)).reasonPhrase
        return "server answered \(status.code)\(phrase.isEmpty ? "" : " \(phrase)") instead of 101"
    }

    /// Makes `socket` current; returns `false` (and closes it) when the link was stopped meanwhile.
    func attach(_ socket: WebSocket) -> Bool {
        let accepted = self.state.withLockedValue { state in
            guard !state.stopped else { return false }
            state.socket = socket
            state.phase = .open
            state.flushing = !state.queue.isEmpty
            return true
        }
        if !accepted { socket.startClose(code: .goingAway, reason: "outbound socket closed") }
        return accepted
    }

    /// Sends the queued messages in order over the current socket (sends made meanwhile queue behind them).
    func flush(_ transmit: (Outgoing, WebSocket) async -> Result<Void, GatewayError>) async {
        while true {
            let next: (Pending, WebSocket)? = self.state.withLockedValue { state in
                guard let socket = state.socket, !state.stopped, let first = state.queue.popFirst() else {
                    state.flushing = false
                    return nil
                }
                return (first, socket)
            }
            guard let (pending, socket) = next else { return }
            let result = await transmit(pending.outgoing, socket)
            if case .failure(let error) = result, error.kind == .socketNotOpen {
                // The new connection broke already: keep the message for the next one.
                self.state.withLockedValue {
                    $0.queue.prepend(pending)
                    $0.flushing = false
                }
                return
            }
            pending.continuation?.resume(returning: .done(result))
        }
    }

    /// The connection was lost and a retry will follow.
    func lost() {
        self.state.withLockedValue { state in
            if !state.stopped { state.phase = .reconnecting }
        }
    }

    /// Decides how a send goes: directly, or queued until the socket is connected (then resumed with the outcome).
    func submit(_ outgoing: Outgoing) async -> SendPath {
        await withCheckedContinuation { continuation in
            let (path, dropped) = self.enqueue(outgoing, continuation: continuation)
            dropped?.resume(returning: .done(.failure(.reconnectQueueFull(self.id.rawValue, limit: self.queuePolicy.size))))
            if let path { continuation.resume(returning: path) }
        }
    }

    /// Queues a message without waiting for its outcome (for broadcasts); returns the error when it cannot.
    func enqueueDetached(_ prepared: WebSocketPreparedMessage) -> GatewayError? {
        let (path, dropped) = self.enqueue(.prepared(prepared), continuation: nil)
        dropped?.resume(returning: .done(.failure(.reconnectQueueFull(self.id.rawValue, limit: self.queuePolicy.size))))
        switch path {
        case .done(.failure(let error))?: return error
        default: return nil
        }
    }

    private func enqueue(
        _ outgoing: Outgoing, continuation: CheckedContinuation<SendPath, Never>?
    ) -> (SendPath?, CheckedContinuation<SendPath, Never>?) {
        self.state.withLockedValue { state in
            if state.stopped { return (.done(.failure(.socketNotOpen(self.id.rawValue))), nil) }
            if state.phase == .open, !state.flushing, let socket = state.socket {
                // A connection that just dropped (its close not yet seen) queues like a reconnecting one.
                if socket.isOpen { return (.direct(socket), nil) }
                if !self.strategy.retries { return (.done(.failure(.socketNotOpen(self.id.rawValue))), nil) }
            }
            guard self.queuePolicy.size > 0 else { return (.done(.failure(.notConnected(self.id.rawValue))), nil) }
            var dropped: CheckedContinuation<SendPath, Never>?
            if state.queue.count >= self.queuePolicy.size {
                guard self.queuePolicy.whenFull == .dropOldest else {
                    return (.done(.failure(.reconnectQueueFull(self.id.rawValue, limit: self.queuePolicy.size))), nil)
                }
                dropped = state.queue.popFirst()?.continuation
            }
            state.queue.append(Pending(outgoing: outgoing, continuation: continuation))
            return (nil, dropped)
        }
    }

    /// Waits `delay` before the next attempt; `false` when the link was stopped meanwhile.
    func sleep(_ delay: TimeAmount) async -> Bool {
        await withCheckedContinuation { continuation in
            let stopped = self.state.withLockedValue { state -> Bool in
                guard !state.stopped else { return true }
                state.sleeper = (continuation, nil)
                return false
            }
            if stopped { return continuation.resume(returning: false) }
            let timer = self.eventLoop.scheduleTask(in: delay) { [self] in
                let sleeper = self.state.withLockedValue { state in
                    defer { state.sleeper = nil }
                    return state.sleeper
                }
                sleeper?.continuation.resume(returning: true)
            }
            self.state.withLockedValue { state in
                if state.sleeper != nil { state.sleeper?.timer = timer }
            }
        }
    }

    /// Stops the link for good (a deliberate close, a gateway shutdown, or giving up): wakes a pending wait and
    /// fails every queued message with `error`.
    func stop(failing error: GatewayError) {
        let (queue, sleeper) = self.state.withLockedValue { state in
            state.stopped = true
            state.phase = .closed
            defer {
                state.queue = []
                state.sleeper = nil
            }
            return (state.queue, state.sleeper)
        }
        sleeper?.timer?.cancel()
        sleeper?.continuation.resume(returning: false)
        for pending in queue { pending.continuation?.resume(returning: .done(.failure(error))) }
    }

    static func count(_ id: SocketID, _ result: String) {
        Counter(label: "wsgate_outbound_connects_total", dimensions: [("socket", id.rawValue), ("result", result)]).increment()
    }
}
