import NIOConcurrencyHelpers
import NIOCore

/// The connections a ``WebSocketServer`` is serving: each one's task, started on its channel's event loop the
/// moment its upgrade completes, and the waiters for all of them to end.
///
/// A connection's task is started where the upgrade happens, on the event loop, and prefers that loop's executor:
/// handing accepted connections to a task that starts them (a stream consumed by ``WebSocketServer/run()``) would
/// add two thread hops to every handshake.
///
/// Who owns the tasks: this object. The tasks are not children of `run()`'s task (they start on event loops), so
/// it counts them instead, and ``WebSocketServer/run()`` returns only once none is left:
/// - the application's upgrade decision (``ServerUpgradeHandler``), from ``decisionStarted()`` until the
///   decision is carried out;
/// - each accepted connection's handler task, until the handler returned and the connection closed;
/// - for a handler that left the events to a consumer (``WebSocket/deliverEvents(consumer:)``), the consumer's
///   task too: the connection is served until ``WebSocket/deliveryFinished`` completes, which happens only after
///   that task ended.
final class ServedConnections: Sendable {
    private struct State {
        var sockets: [UInt64: WebSocket] = [:]
        /// Upgrade decisions the application is still making.
        var deciding = 0
        /// Set by ``shutDown(code:reason:)``: connections upgraded after it are closed at once, with the same code
        /// and reason as the others (their 101 may have left before the shutdown began).
        var shutDown: (code: WebSocketCloseCode, reason: String)?
        var waiters: [CheckedContinuation<Void, Never>] = []

        var isIdle: Bool { self.sockets.isEmpty && self.deciding == 0 }

        /// The waiters to resume, when nothing is served any more.
        mutating func takeWaitersIfIdle() -> [CheckedContinuation<Void, Never>] {
            guard self.isIdle else { return [] }
            defer { self.waiters = [] }
            return self.waiters
        }
    }

    private let state = NIOLockedValueBox(State())

    /// Serves an accepted connection: runs its handler in a task on its event loop, then closes it with 1000 if
    /// the handler left it open (1011 if the handler threw).
    func serve(_ socket: WebSocket, handler: @escaping @Sendable (WebSocket) async throws -> Void) {
        let shutDown = self.state.withLockedValue { state in
            state.sockets[socket.id] = socket
            return state.shutDown
        }
        if let shutDown {
            // No task: close it with the shutdown's code and reason, and count it served until it has closed.
            if socket.isOpen { socket.startClose(code: shutDown.code, reason: shutDown.reason) }
            socket.closed.whenComplete { _ in self.ended(socket) }
            return
        }
        // Only the handler is captured: the task's closure lives as long as the connection.
        Task(executorPreference: EventLoopTaskExecutor.of(socket.eventLoop)) {
            await self.run(socket, handler: handler)
        }
    }

    /// One connection's task. Kept small and out of line: the frames of a parked task stay allocated as long as
    /// the connection lives.
    @inline(never)
    private func run(_ socket: WebSocket, handler: @Sendable (WebSocket) async throws -> Void) async {
        var failed = false
        do {
            try await handler(socket)
        } catch {
            failed = true
        }
        if let delivery = socket.deliveryFinished {
            // The handler left the events to a callback: the connection is served until it took the last.
            return self.ended(socket, after: delivery, failed: failed)
        }
        if failed { await Self.close(socket, code: .internalServerError, reason: "handler failed") }
        await Self.close(socket, code: .normalClosure, reason: "")
        self.ended(socket)
    }

    /// Ends a connection served by a callback once the callback took its last event and the connection closed.
    private func ended(_ socket: WebSocket, after delivery: EventLoopFuture<Void>, failed: Bool) {
        if failed { socket.startClose(code: .internalServerError, reason: "handler failed") }
        delivery.whenComplete { _ in
            if socket.isOpen { socket.startClose(code: .normalClosure, reason: "") }
            socket.closed.whenComplete { _ in self.ended(socket) }
        }
    }

    @inline(never)
    private static func close(_ socket: WebSocket, code: WebSocketCloseCode, reason: String) async {
        if socket.isOpen { _ = try? await socket.close(code: code, reason: reason) }
    }

    private func ended(_ socket: WebSocket) {
        let waiters = self.state.withLockedValue { state in
            state.sockets.removeValue(forKey: socket.id)
            return state.takeWaitersIfIdle()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The application started deciding an upgrade (in a task of the connection's upgrade handler).
    func decisionStarted() {
        self.state.withLockedValue { $0.deciding += 1 }
    }

    /// The decision was carried out (an accepted connection is served from now on) or dropped.
    func decisionEnded() {
        let waiters = self.state.withLockedValue { state in
            state.deciding -= 1
            return state.takeWaitersIfIdle()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Marks the server as shutting down with the close code and reason every connection gets; returns the
    /// connections being served.
    func shutDown(code: WebSocketCloseCode, reason: String) -> [WebSocket] {
        self.state.withLockedValue { state in
            state.shutDown = (code, reason)
            return Array(state.sockets.values)
        }
    }

    /// Returns once no connection is being served.
    func waitUntilAllEnded() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let done = self.state.withLockedValue { state in
                if state.isIdle { return true }
                state.waiters.append(waiter)
                return false
            }
            if done { waiter.resume() }
        }
    }
}
