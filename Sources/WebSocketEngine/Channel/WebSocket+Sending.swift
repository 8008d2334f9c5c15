import NIOCore
import NIOWebSocket

/// Sending and closing: every send is carried out in call order on the connection's event loop.
extension WebSocket {
    /// Sends a whole message. Returns once it is queued for the network; waits or fails by the configured
    /// backpressure policy when the outbound queue is full.
    public func send(_ message: WebSocketMessage) async throws {
        // From the connection's own event loop (a task running there): no hop, no promise unless it must wait.
        if self.eventLoop.inEventLoop {
            if let pending = try self.handler.value.sendFromLoop(message) { try await pending.get() }
            return
        }
        try await self.onLoop { handler, promise in handler.send(message, promise: promise) }
    }

    /// Sends `message` at once, without waiting, when called on the connection's event loop (as from
    /// ``WebSocketEventConsumer/take(_:)``) and the outbound queue has room. Otherwise it sends nothing and returns
    /// `false`: then use ``send(_:)``, which waits or fails according to the backpressure policy.
    ///
    /// - Throws: what ``send(_:)`` throws when the message cannot be sent at all (the connection is closing or
    ///   closed, a fragmented send is in progress).
    public func trySend(_ message: WebSocketMessage) throws -> Bool {
        guard self.eventLoop.inEventLoop else { return false }
        return try self.handler.value.trySendFromLoop(message)
    }

    /// Sends a message prepared for many connections (see ``WebSocketPreparedMessage``): the encoded frame is
    /// shared with every other connection that would put the same bytes on the wire.
    public func send(_ prepared: WebSocketPreparedMessage) async throws {
        if self.eventLoop.inEventLoop {
            if let pending = try self.handler.value.sendFromLoop(prepared) { try await pending.get() }
            return
        }
        try await self.onLoop { handler, promise in handler.send(prepared, promise: promise) }
    }

    /// Sends one prepared message to many connections with one hop per event loop instead of one per
    /// connection. A connection whose outbound queue is full fails at once (whatever its backpressure policy), so
    /// one slow connection never holds up the others.
    ///
    /// - Returns: the failures, as indexes into `sockets` with their errors.
    public static func send(
        _ prepared: WebSocketPreparedMessage,
        to sockets: [WebSocket]
    ) async -> [(index: Int, error: WebSocketError)] {
        var byLoop: [ObjectIdentifier: (any EventLoop, [(Int, WebSocket)])] = [:]
        for (index, socket) in sockets.enumerated() {
            byLoop[ObjectIdentifier(socket.eventLoop), default: (socket.eventLoop, [])].1.append((index, socket))
        }
        let futures = byLoop.values.map { eventLoop, members in
            eventLoop.submit {
                var failures: [(index: Int, error: WebSocketError)] = []
                for (index, socket) in members {
                    do throws(WebSocketError) {
                        try socket.handler.value.sendNow(prepared)
                    } catch {
                        failures.append((index, error))
                    }
                }
                return failures
            }
        }
        var failures: [(index: Int, error: WebSocketError)] = []
        for future in futures {
            failures += (try? await future.get()) ?? []
        }
        return failures
    }

    /// Sends a text message.
    public func send(text: String) async throws {
        try await self.send(.text(text))
    }

    /// Sends a binary message.
    public func send(binary: ByteBuffer) async throws {
        try await self.send(.binary(binary))
    }

    /// Sends a large message as a stream of fragments: `body` gets a writer whose every `write` becomes one frame.
    /// The message ends when `body` returns (an empty final frame closes it if needed).
    public func sendFragmented(text isText: Bool, _ body: (WebSocketFragmentWriter) async throws -> Void) async throws {
        let writer = WebSocketFragmentWriter(socket: self, isText: isText)
        try await body(writer)
        try await writer.finish()
    }

    func sendFragment(_ payload: ByteBuffer, isText: Bool, fin: Bool) async throws {
        try await self.onLoop { handler, promise in
            handler.sendFragment(payload, isText: isText, fin: fin, promise: promise)
        }
    }

    /// Sends a ping (at most 125 bytes of payload).
    public func ping(_ payload: ByteBuffer = ByteBuffer()) async throws {
        try await self.onLoop { handler, promise in handler.sendControl(.ping, payload: payload, promise: promise) }
    }

    /// Sends an unsolicited pong (at most 125 bytes of payload).
    public func pong(_ payload: ByteBuffer = ByteBuffer()) async throws {
        try await self.onLoop { handler, promise in handler.sendControl(.pong, payload: payload, promise: promise) }
    }

    /// Starts the closing handshake and waits until the connection is closed (at most the close timeout).
    ///
    /// - Returns: how the connection ended (usually the peer's echo of `code`).
    @discardableResult
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") async throws -> WebSocketCloseInfo {
        try await self.onLoop { handler, promise in handler.close(code: code, reason: reason, promise: promise) }
        return await self.closeInfo
    }

    /// Starts the closing handshake without waiting for it to finish (for example from a broadcast loop).
    public func startClose(code: WebSocketCloseCode = .normalClosure, reason: String = "") {
        let handler = self.handler
        self.eventLoop.execute { handler.value.close(code: code, reason: reason, promise: nil) }
    }

    func onLoop(_ body: @escaping @Sendable (WebSocketChannelHandler, EventLoopPromise<Void>) -> Void) async throws {
        let promise = self.eventLoop.makePromise(of: Void.self)
        if self.eventLoop.inEventLoop {
            body(self.handler.value, promise)
        } else {
            self.eventLoop.execute { body(self.handler.value, promise) }
        }
        try await promise.futureResult.get()
    }
}
