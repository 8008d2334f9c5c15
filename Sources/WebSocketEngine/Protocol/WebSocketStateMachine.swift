import NIOCore
import NIOWebSocket

/// The whole of RFC 6455 (and the framing side of RFC 7692) for one connection, shared by client and server.
///
/// A value type with no I/O and no clock: the channel handler feeds it bytes, timer firings and application
/// requests (with `now` where time matters) and carries out what it returns. Frame validity, fragmentation, UTF-8,
/// limits, masking, close codes, ping/pong and the closing handshake are all decided here and nowhere else.
struct WebSocketStateMachine {
    /// What the machine needs to know about the connection it runs.
    struct Configuration {
        var role: WebSocketRole
        var maxFrameSize: Int
        var maxMessageSize: Int
        var closeTimeout: TimeAmount
        /// Keepalive ping interval and how long to wait for the pong; `nil` disables keepalive.
        var keepalive: (interval: TimeAmount, timeout: TimeAmount)?
        /// Report `idleTimeout` when no data moved either way for this long.
        var idleTimeout: TimeAmount?
    }

    /// The closing handshake (RFC 6455 §7).
    enum ConnectionState: Equatable {
        case open
        /// This endpoint sent a close frame and waits for the peer's until `deadline`.
        case closeSent(deadline: NIODeadline)
        /// The peer's close frame arrived, or the peer broke the protocol. Input is ignored from now on, but this
        /// endpoint's close frame waits (``commitClose(now:)``) until the application has taken the events before
        /// it, so that its answers to earlier messages still go out first.
        case closePending(PendingClose)
        /// Both close frames were exchanged (or the peer's was answered); a client waits for the server to close
        /// TCP until `deadline`.
        case awaitingTCPClose(deadline: NIODeadline)
        case closed
    }

    /// The close frame this endpoint owes the peer.
    struct PendingClose: Equatable {
        /// The code to send; `nil` sends an empty close frame (the peer's had no code).
        var code: WebSocketCloseCode?
        var reason: String
        /// Failing the connection (RFC 6455 §7.1.7): TCP closes right after the frame, whatever the role.
        var failing: Bool
    }

    /// Where the inbound parser is within the current frame.
    enum FrameState {
        case awaitingHeader
        /// The payload of a data frame: `remaining` bytes still to come, `maskOffset` bytes already unmasked.
        case dataPayload(remaining: Int, maskKey: WebSocketMaskingKey?, maskOffset: Int, fin: Bool)
    }

    /// A data message being received.
    struct InboundMessage {
        var isText: Bool
        var compressed: Bool
        /// Unmasked and, when compressed, inflated payload.
        var payload: ByteBuffer
        /// Bytes received on the wire for an uncompressed message (the limit is checked before buffering).
        var wireSize: Int
        var utf8 = UTF8Validator()
    }

    let configuration: Configuration
    let allocator: ByteBufferAllocator
    /// The negotiated permessage-deflate state, when the extension is in use.
    let compression: PerMessageDeflateCodec?
    /// Makes the masking key of each client frame; replaceable for deterministic tests.
    var makeMaskKey: () -> WebSocketMaskingKey = { WebSocketMaskingKey.random() }

    private(set) var state: ConnectionState = .open
    /// What the application is told when the connection ends.
    private(set) var closeInfo: WebSocketCloseInfo?
    var frameState: FrameState = .awaitingHeader
    var message: InboundMessage?
    /// Bytes received but not parsed yet.
    var inbound: ByteBuffer
    /// The opcode of a fragmented message this endpoint is sending, if any.
    private var outboundFragment: WebSocketOpcode?
    /// The payload of the keepalive ping awaiting its pong, and when it was sent.
    private var pendingPing: (payload: UInt64, sentAt: NIODeadline)?
    private var pingCounter: UInt64 = 0
    private var lastActivity: NIODeadline

    init(
        configuration: Configuration,
        compression: PerMessageDeflateCodec?,
        allocator: ByteBufferAllocator = ByteBufferAllocator(),
        now: NIODeadline
    ) {
        self.configuration = configuration
        self.compression = compression
        self.allocator = allocator
        self.inbound = allocator.buffer(capacity: 0)
        self.lastActivity = now
    }

    var isOpen: Bool { self.state == .open }

    /// Whether this endpoint owes the peer a close frame that waits for ``commitClose(now:)``.
    var owesCloseFrame: Bool {
        if case .closePending = self.state { return true }
        return false
    }

    // MARK: - Closing

    /// What the handler does after a close request from the application.
    enum CloseAction: Equatable {
        /// Write this close frame and call ``closeTimerFired(now:)`` at `deadline`.
        case send(ByteBuffer, deadline: NIODeadline)
        /// A close is already under way; nothing to do.
        case none
    }

    /// The application asks to close with `code` and `reason`.
    mutating func close(code: WebSocketCloseCode, reason: String, now: NIODeadline) throws(WebSocketError) -> CloseAction {
        guard code.isValidOnWire else { throw .invalidCloseCode(code.rawValue) }
        guard reason.utf8.count <= 123 else { throw .closeReasonTooLong(reason.utf8.count) }
        guard self.state == .open else { return .none }
        let deadline = now + self.configuration.closeTimeout
        // The close is this endpoint's, with this code and reason, whether the peer answers it or not.
        self.closeInfo = WebSocketCloseInfo(code: code, reason: reason, initiatedLocally: true)
        self.state = .closeSent(deadline: deadline)
        return .send(self.encodeClose(code: code, reason: reason), deadline: deadline)
    }

    /// The close timer set by a ``CloseAction`` or an inbound close fired: `true` means close TCP now.
    mutating func closeTimerFired(now: NIODeadline) -> Bool {
        switch self.state {
        case .closeSent(let deadline), .awaitingTCPClose(let deadline):
            guard now >= deadline else { return false }
            if self.closeInfo == nil {
                self.closeInfo = WebSocketCloseInfo(code: .abnormalClosure, reason: "close timeout", initiatedLocally: true)
            }
            self.state = .closed
            return true
        case .open, .closePending, .closed:
            return false
        }
    }

    /// TCP closed (by either side); returns what the application is told.
    mutating func connectionClosed() -> WebSocketCloseInfo {
        self.state = .closed
        if let info = self.closeInfo { return info }
        let info = WebSocketCloseInfo(code: .abnormalClosure, reason: "", initiatedLocally: false)
        self.closeInfo = info
        return info
    }

    /// Fails the connection (RFC 6455 §7.1.7) with `code`: input stops here and the close frame follows once
    /// ``commitClose(now:)`` is called; TCP closes right after it.
    mutating func fail(code: WebSocketCloseCode, reason: String) {
        if self.closeInfo == nil {
            self.closeInfo = WebSocketCloseInfo(code: code, reason: reason, initiatedLocally: true)
        }
        self.message = nil
        self.inbound.clear()
        switch self.state {
        case .open:
            self.state = .closePending(PendingClose(code: code, reason: reason, failing: true))
        case .closeSent, .closePending, .awaitingTCPClose, .closed:
            // A close frame was sent (or is owed already); only TCP remains to be closed.
            self.state = .closed
        }
    }

    /// Records a close frame from the peer. When the peer started the close, the echo is owed (see
    /// ``commitClose(now:)``); when this endpoint started it, the closing handshake is complete.
    mutating func peerClosed(info: WebSocketCloseInfo, now: NIODeadline) -> InboundAction {
        self.message = nil
        switch self.state {
        case .open:
            self.closeInfo = info
            // Echo the status code (not the reason), or an empty close when none came (RFC 6455 §5.5.1).
            let code = info.code == .noStatusReceived ? nil : info.code
            self.state = .closePending(PendingClose(code: code, reason: "", failing: false))
        case .closeSent:
            // The peer's answer completes the close this endpoint started (and described already): the application
            // is told that close, not the echo.
            self.state = self.configuration.role == .server ? .closed : .awaitingTCPClose(deadline: now + self.configuration.closeTimeout)
            return .closed(self.closeInfo ?? info)
        case .closePending, .awaitingTCPClose, .closed:
            return .needMoreData
        }
        return .closed(info)
    }

    /// What to do now that the application has seen everything before a close or failure: the close frame to
    /// send (if one is owed) and when to close TCP (`nil`: right after the frame; a client waits for the server).
    mutating func commitClose(now: NIODeadline) -> (frame: ByteBuffer?, closeTCPAt: NIODeadline?) {
        switch self.state {
        case .closePending(let pending):
            let frame = self.encodeClose(code: pending.code, reason: pending.reason)
            if pending.failing || self.configuration.role == .server {
                self.state = .closed
                return (frame, nil)
            }
            let deadline = now + self.configuration.closeTimeout
            self.state = .awaitingTCPClose(deadline: deadline)
            return (frame, deadline)
        case .awaitingTCPClose(let deadline):
            return (nil, deadline)
        case .open, .closeSent, .closed:
            return (nil, nil)
        }
    }

    private func encodeClose(code: WebSocketCloseCode?, reason: String) -> ByteBuffer {
        var payload = self.allocator.buffer(capacity: 2 + reason.utf8.count)
        if let code {
            payload.writeInteger(code.rawValue)
            payload.writeString(reason)
        }
        return self.encodeFrame(opcode: .connectionClose, fin: true, rsv1: false, payload: payload)
    }

    // MARK: - Sending

    /// Encodes a whole message for the wire (compressed when negotiated and worth it, masked by a client).
    mutating func encode(_ message: WebSocketMessage, now: NIODeadline) throws(WebSocketError) -> ByteBuffer {
        try self.checkCanSendData()
        guard self.outboundFragment == nil else { throw .fragmentedSendInProgress }
        self.lastActivity = now
        switch message {
        case .text(let text):
            if let codec = self.compression, codec.shouldCompress(size: text.utf8.count) {
                return self.encodeCompressed(opcode: .text, payload: self.allocator.buffer(string: text), codec: codec)
            }
            return self.encodeFrame(opcode: .text, fin: true, text: text)
        case .binary(let payload):
            if let codec = self.compression, codec.shouldCompress(size: payload.readableBytes) {
                return self.encodeCompressed(opcode: .binary, payload: payload, codec: codec)
            }
            return self.encodeFrame(opcode: .binary, fin: true, rsv1: false, payload: payload)
        }
    }

    /// A frame ready for the wire: one buffer, or a header and the payload buffer as it is (written together, the
    /// payload is not copied).
    enum EncodedFrame {
        case whole(ByteBuffer)
        case split(header: ByteBuffer, payload: ByteBuffer)
    }

    /// Encodes a whole message like ``encode(_:now:)``, except that an uncompressed binary message from a server
    /// keeps its payload buffer: only the header is new, and for payloads under 126 bytes it is a shared constant.
    mutating func encodeParts(_ message: WebSocketMessage, now: NIODeadline) throws(WebSocketError) -> EncodedFrame {
        guard case .binary(let payload) = message, self.configuration.role == .server,
            !(self.compression?.shouldCompress(size: payload.readableBytes) ?? false)
        else { return .whole(try self.encode(message, now: now)) }
        try self.checkCanSendData()
        guard self.outboundFragment == nil else { throw .fragmentedSendInProgress }
        self.lastActivity = now
        return .split(header: FrameEncoder.serverBinaryHeader(length: payload.readableBytes, allocator: self.allocator), payload: payload)
    }

    /// Encodes a message prepared for many connections, reusing the frame other connections already encoded
    /// whenever the bytes on the wire would be the same (see ``WebSocketPreparedMessage``).
    mutating func encode(_ prepared: WebSocketPreparedMessage, now: NIODeadline) throws(WebSocketError) -> ByteBuffer {
        guard self.configuration.role == .server else { return try self.encode(prepared.message, now: now) }
        try self.checkCanSendData()
        guard self.outboundFragment == nil else { throw .fragmentedSendInProgress }
        if let codec = self.compression, codec.shouldCompress(size: prepared.size) {
            guard let key = codec.sharedFrameKey else { return try self.encode(prepared.message, now: now) }
            self.lastActivity = now
            return prepared.frame(key: key) {
                // A fresh codec with the same settings: its output depends on the message alone.
                let fresh = WebSocketStateMachine(configuration: self.configuration, compression: codec.makeStateless(), allocator: self.allocator, now: now)
                return fresh.encodeCompressed(prepared.message)
            }
        }
        self.lastActivity = now
        return prepared.plainFrame
    }

    private func encodeCompressed(_ message: WebSocketMessage) -> ByteBuffer {
        switch message {
        case .text(let text): return self.encodeCompressed(opcode: .text, payload: self.allocator.buffer(string: text), codec: self.compression!)
        case .binary(let payload): return self.encodeCompressed(opcode: .binary, payload: payload, codec: self.compression!)
        }
    }

    /// Encodes one fragment of a message streamed by the application: the first call fixes the type (`text`
    /// or `binary`), later ones are continuations, and `fin` ends the message. Fragments are not compressed.
    mutating func encodeFragment(
        _ payload: ByteBuffer,
        isText: Bool,
        fin: Bool,
        now: NIODeadline
    ) throws(WebSocketError) -> ByteBuffer {
        try self.checkCanSendData()
        self.lastActivity = now
        let opcode: WebSocketOpcode
        if self.outboundFragment == nil {
            opcode = isText ? .text : .binary
        } else {
            opcode = .continuation
        }
        self.outboundFragment = fin ? nil : (self.outboundFragment ?? opcode)
        return self.encodeFrame(opcode: opcode, fin: fin, rsv1: false, payload: payload)
    }

    /// Encodes a ping or pong from the application.
    mutating func encodeControl(_ opcode: WebSocketOpcode, payload: ByteBuffer) throws(WebSocketError) -> ByteBuffer {
        try self.checkCanSendData()
        guard payload.readableBytes <= 125 else { throw .controlFrameTooLarge(payload.readableBytes) }
        return self.encodeFrame(opcode: opcode, fin: true, rsv1: false, payload: payload)
    }

    private func checkCanSendData() throws(WebSocketError) {
        switch self.state {
        case .open, .closePending: return
        case .closeSent, .awaitingTCPClose: throw .connectionClosing
        case .closed: throw .connectionClosed
        }
    }

    private func encodeCompressed(opcode: WebSocketOpcode, payload: ByteBuffer, codec: PerMessageDeflateCodec) -> ByteBuffer {
        var frame = self.allocator.buffer(capacity: FrameEncoder.maxHeaderLength + payload.readableBytes / 2)
        frame.moveWriterIndex(forwardBy: FrameEncoder.maxHeaderLength)
        let payloadStart = frame.writerIndex
        do {
            try codec.compress(payload, into: &frame)
        } catch {
            // zlib failing to deflate valid input means it is out of memory; send the message uncompressed.
            return self.encodeFrame(opcode: opcode, fin: true, rsv1: false, payload: payload)
        }
        FrameEncoder.finishFrame(
            &frame, payloadStart: payloadStart, fin: true, rsv1: true, opcode: opcode, maskKey: self.maskKey())
        return frame
    }

    func encodeFrame(opcode: WebSocketOpcode, fin: Bool, rsv1: Bool, payload: ByteBuffer) -> ByteBuffer {
        FrameEncoder.encode(
            allocator: self.allocator, fin: fin, rsv1: rsv1, opcode: opcode, maskKey: self.maskKey(), payload: payload)
    }

    private func encodeFrame(opcode: WebSocketOpcode, fin: Bool, text: String) -> ByteBuffer {
        FrameEncoder.encode(allocator: self.allocator, fin: fin, opcode: opcode, maskKey: self.maskKey(), text: text)
    }

    private func maskKey() -> WebSocketMaskingKey? {
        self.configuration.role == .client ? self.makeMaskKey() : nil
    }

    // MARK: - Keepalive and idle

    /// What a keepalive timer firing asks for.
    enum KeepaliveAction: Equatable {
        /// Send this ping; fire again at `next`.
        case sendPing(ByteBuffer, next: NIODeadline)
        /// Nothing to send; fire again at `next`.
        case wait(next: NIODeadline)
        /// The last ping was not answered in time: the connection is failing (see ``commitClose(now:)``).
        case pongTimedOut
        /// Keepalive is off or the connection is closing.
        case stop
    }

    /// The keepalive timer fired.
    mutating func keepaliveTimerFired(now: NIODeadline) -> KeepaliveAction {
        guard let keepalive = self.configuration.keepalive, self.state == .open else { return .stop }
        if let pending = self.pendingPing {
            let timeout = pending.sentAt + keepalive.timeout
            if now >= timeout {
                self.fail(code: .goingAway, reason: "keepalive pong timeout")
                return .pongTimedOut
            }
            return .wait(next: min(timeout, pending.sentAt + keepalive.interval))
        }
        self.pingCounter &+= 1
        self.pendingPing = (self.pingCounter, now)
        var payload = self.allocator.buffer(capacity: 8)
        payload.writeInteger(self.pingCounter)
        let frame = self.encodeFrame(opcode: .ping, fin: true, rsv1: false, payload: payload)
        return .sendPing(frame, next: now + min(keepalive.interval, keepalive.timeout))
    }

    /// A pong arrived: clears the pending keepalive ping when it carries its payload.
    mutating func receivedPong(_ payload: ByteBuffer) {
        if let pending = self.pendingPing, payload.readableBytes == 8,
            payload.getInteger(at: payload.readerIndex, as: UInt64.self) == pending.payload
        {
            self.pendingPing = nil
        }
    }

    /// The idle timer fired: returns whether the connection is idle, and when to check again.
    mutating func idleTimerFired(now: NIODeadline) -> (idle: Bool, next: NIODeadline)? {
        guard let timeout = self.configuration.idleTimeout, self.state == .open else { return nil }
        let deadline = self.lastActivity + timeout
        if now >= deadline {
            // Report once per idle period: the next report needs another full period of silence.
            self.lastActivity = now
            return (true, now + timeout)
        }
        return (false, deadline)
    }

    /// Data moved at `now` (used by the idle timeout).
    mutating func noteActivity(now: NIODeadline) {
        self.lastActivity = now
    }
}
