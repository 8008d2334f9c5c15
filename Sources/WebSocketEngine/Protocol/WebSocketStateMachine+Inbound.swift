import NIOCore
import NIOWebSocket

extension WebSocketStateMachine {
    /// What the handler does with the next piece of inbound data.
    enum InboundAction: Equatable {
        /// Everything received so far is consumed; read more.
        case needMoreData
        /// A whole message for the application.
        case message(WebSocketMessage)
        /// A ping: write `pong` (when the connection may still send) and tell the application.
        case ping(ByteBuffer, pong: ByteBuffer?)
        /// A pong for the application.
        case pong(ByteBuffer)
        /// The peer's close frame: tell the application, then ``commitClose(now:)``.
        case closed(WebSocketCloseInfo)
        /// The peer broke the protocol: tell the application, then ``commitClose(now:)``.
        case failed(WebSocketError)
    }

    /// A shared empty buffer: assigning it releases whatever read buffer the connection held.
    private static let emptyBuffer = ByteBuffer()

    /// Bytes arrived from the peer at `now`; call ``nextInboundAction(now:)`` until it answers `needMoreData`.
    mutating func receive(_ bytes: ByteBuffer, now: NIODeadline) {
        self.noteActivity(now: now)
        if self.inbound.readableBytes == 0 {
            self.inbound = bytes
        } else {
            self.inbound.writeImmutableBuffer(bytes)
        }
    }

    /// Parses as far as the received bytes allow and returns the next thing to do.
    mutating func nextInboundAction(now: NIODeadline) -> InboundAction {
        while true {
            switch self.state {
            case .closePending, .awaitingTCPClose, .closed:
                // Nothing may follow a close frame (RFC 6455 §5.5.1); whatever does is discarded.
                self.inbound.clear()
                return .needMoreData
            case .open, .closeSent:
                break
            }
            switch self.frameState {
            case .awaitingHeader:
                guard let header = FrameHeader.peek(in: self.inbound) else {
                    self.compactInbound()
                    return .needMoreData
                }
                if let (code, reason) = self.violation(in: header) {
                    return self.failAction(code, reason)
                }
                let length = Int(header.payloadLength)
                if header.isControl {
                    // Control frames are at most 125 bytes: wait for the whole frame, then act on it.
                    guard self.inbound.readableBytes >= header.headerLength + length else { return .needMoreData }
                    self.inbound.moveReaderIndex(forwardBy: header.headerLength)
                    var payload = self.inbound.readSlice(length: length)!
                    if let key = header.maskKey {
                        payload.webSocketMaskPayload(from: payload.readerIndex, key: key)
                    }
                    if let action = self.control(opcode: header.opcode, payload: payload, now: now) {
                        return action
                    }
                    continue
                }
                if header.opcode != 0, header.fin, !header.rsv1, self.inbound.readableBytes >= header.headerLength + length {
                    return self.wholeFrameMessage(header, length: length)
                }
                self.inbound.moveReaderIndex(forwardBy: header.headerLength)
                if header.opcode != 0 {
                    let capacity = header.rsv1 ? 0 : (header.fin ? length : min(length, self.configuration.maxMessageSize))
                    self.message = InboundMessage(
                        isText: header.opcode == 1,
                        compressed: header.rsv1,
                        payload: self.allocator.buffer(capacity: capacity),
                        wireSize: 0
                    )
                }
                self.message!.wireSize += length
                self.frameState = .dataPayload(remaining: length, maskKey: header.maskKey, maskOffset: 0, fin: header.fin)
            case .dataPayload(let remaining, let maskKey, let maskOffset, let fin):
                let count = min(remaining, self.inbound.readableBytes)
                if count > 0, let (code, reason) = self.consumePayload(count: count, maskKey: maskKey, maskOffset: maskOffset) {
                    return self.failAction(code, reason)
                }
                if remaining > count {
                    self.frameState = .dataPayload(remaining: remaining - count, maskKey: maskKey, maskOffset: maskOffset + count, fin: fin)
                    self.compactInbound()
                    return .needMoreData
                }
                self.frameState = .awaitingHeader
                if fin {
                    return self.finishMessage()
                }
            }
        }
    }

    /// The rule a frame header breaks, if any, as the close code and reason to fail the connection with.
    private func violation(in header: FrameHeader) -> (WebSocketCloseCode, String)? {
        if header.reservedBits & 0x30 != 0 {
            return (.protocolError, "RSV2/RSV3 set but no extension defines them")
        }
        if header.rsv1, self.compression == nil || header.isControl || header.opcode == 0 {
            return (.protocolError, "RSV1 set on a frame that cannot be compressed")
        }
        switch header.opcode {
        case 0, 1, 2, 8, 9, 10: break
        default: return (.protocolError, "reserved opcode \(header.opcode)")
        }
        switch (self.configuration.role, header.maskKey) {
        case (.server, nil): return (.protocolError, "client frame is not masked")
        case (.client, .some): return (.protocolError, "server frame is masked")
        default: break
        }
        if header.payloadLength > UInt64(Int64.max) {
            return (.protocolError, "payload length has its most significant bit set")
        }
        if header.lengthNotMinimal {
            return (.protocolError, "payload length is not minimally encoded")
        }
        if header.isControl {
            if header.payloadLength > 125 { return (.protocolError, "control frame payload exceeds 125 bytes") }
            if !header.fin { return (.protocolError, "control frame is fragmented") }
            return nil
        }
        if header.opcode == 0, self.message == nil {
            return (.protocolError, "continuation frame without a message to continue")
        }
        if header.opcode != 0, self.message != nil {
            return (.protocolError, "new data frame before the fragmented message was finished")
        }
        if header.payloadLength > UInt64(self.configuration.maxFrameSize) {
            return (.messageTooBig, "frame of \(header.payloadLength) bytes exceeds the limit of \(self.configuration.maxFrameSize)")
        }
        let compressed = header.opcode == 0 ? self.message!.compressed : header.rsv1
        let wireSize = (self.message?.wireSize ?? 0) + Int(header.payloadLength)
        // A compressed message is limited after inflation; its wire size only needs a loose bound so that a
        // stream of empty deflate blocks cannot run forever.
        let wireLimit = compressed ? self.configuration.maxMessageSize + self.configuration.maxMessageSize / 64 + 1024 : self.configuration.maxMessageSize
        if wireSize > wireLimit {
            return (.messageTooBig, "message exceeds the limit of \(self.configuration.maxMessageSize) bytes")
        }
        return nil
    }

    /// Takes `count` payload bytes of the current data frame into the message (unmasking, inflating and
    /// checking UTF-8 as they come, so invalid text fails at the first bad byte).
    private mutating func consumePayload(count: Int, maskKey: WebSocketMaskingKey?, maskOffset: Int) -> (WebSocketCloseCode, String)? {
        let validatedFrom: Int
        if self.message!.compressed {
            var chunk = self.inbound.readSlice(length: count)!
            if let maskKey {
                chunk.webSocketMaskPayload(from: chunk.readerIndex, key: maskKey, keyOffset: maskOffset)
            }
            validatedFrom = self.message!.payload.writerIndex
            do {
                try self.compression!.inflate(chunk, into: &self.message!.payload, limit: self.configuration.maxMessageSize)
            } catch {
                return Self.inflateViolation(error, limit: self.configuration.maxMessageSize)
            }
        } else {
            validatedFrom = self.message!.payload.writerIndex
            self.message!.payload.writeImmutableBuffer(self.inbound.readSlice(length: count)!)
            if let maskKey {
                self.message!.payload.webSocketMaskPayload(from: validatedFrom, key: maskKey, keyOffset: maskOffset)
            }
        }
        return self.validateText(from: validatedFrom)
    }

    private mutating func finishMessage() -> InboundAction {
        if self.message!.compressed {
            let validatedFrom = self.message!.payload.writerIndex
            do {
                try self.compression!.finishMessage(into: &self.message!.payload, limit: self.configuration.maxMessageSize)
            } catch {
                let (code, reason) = Self.inflateViolation(error, limit: self.configuration.maxMessageSize)
                return self.failAction(code, reason)
            }
            if let (code, reason) = self.validateText(from: validatedFrom) {
                return self.failAction(code, reason)
            }
        }
        let message = self.message!
        self.message = nil
        if message.isText {
            guard message.utf8.isAtBoundary else {
                return self.failAction(.invalidFramePayloadData, "text message ends inside a UTF-8 sequence")
            }
            return .message(.text(String(buffer: message.payload)))
        }
        return .message(.binary(message.payload))
    }

    /// A whole unfragmented, uncompressed data frame that is already in the receive buffer: its payload is a
    /// slice of that buffer, unmasked in place (no copy, no allocation for binary messages).
    private mutating func wholeFrameMessage(_ header: FrameHeader, length: Int) -> InboundAction {
        self.inbound.moveReaderIndex(forwardBy: header.headerLength)
        var payload = self.inbound.readSlice(length: length)!
        if let key = header.maskKey { payload.unmaskReceivedPayload(key: key) }
        guard header.opcode == 1 else { return .message(.binary(payload)) }
        var validator = UTF8Validator()
        guard payload.withUnsafeReadableBytes({ validator.validate($0) }) else {
            return self.failAction(.invalidFramePayloadData, "text message is not valid UTF-8")
        }
        guard validator.isAtBoundary else {
            return self.failAction(.invalidFramePayloadData, "text message ends inside a UTF-8 sequence")
        }
        return .message(.text(String(buffer: payload)))
    }

    private mutating func validateText(from index: Int) -> (WebSocketCloseCode, String)? {
        guard self.message!.isText else { return nil }
        let start = index - self.message!.payload.readerIndex
        var validator = self.message!.utf8
        let valid = self.message!.payload.withUnsafeReadableBytes { bytes in
            validator.validate(UnsafeRawBufferPointer(rebasing: bytes[start...]))
        }
        self.message!.utf8 = validator
        return valid ? nil : (.invalidFramePayloadData, "text message is not valid UTF-8")
    }

    private static func inflateViolation(_ error: PerMessageDeflateCodec.InflateError, limit: Int) -> (WebSocketCloseCode, String) {
        switch error {
        case .tooLarge: return (.messageTooBig, "decompressed message exceeds the limit of \(limit) bytes")
        case .corrupt: return (.invalidFramePayloadData, "compressed message is not valid DEFLATE data")
        }
    }

    /// Acts on a whole control frame; `nil` means "nothing for the handler, keep parsing".
    private mutating func control(opcode: UInt8, payload: ByteBuffer, now: NIODeadline) -> InboundAction? {
        switch opcode {
        case 8:
            var payload = payload
            guard payload.readableBytes != 1 else {
                return self.failAction(.protocolError, "close frame with a 1-byte payload")
            }
            guard let code = payload.readInteger(as: UInt16.self) else {
                return self.peerClosed(info: WebSocketCloseInfo(code: .noStatusReceived, initiatedLocally: false), now: now)
            }
            guard WebSocketCloseCode(code).isValidOnWire else {
                return self.failAction(.protocolError, "invalid close code \(code)")
            }
            var validator = UTF8Validator()
            let valid = payload.withUnsafeReadableBytes { validator.validate($0) } && validator.isAtBoundary
            guard valid else {
                return self.failAction(.invalidFramePayloadData, "close reason is not valid UTF-8")
            }
            let info = WebSocketCloseInfo(code: WebSocketCloseCode(code), reason: String(buffer: payload), initiatedLocally: false)
            return self.peerClosed(info: info, now: now)
        case 9:
            let pong = self.isOpen ? self.encodeFrame(opcode: .pong, fin: true, rsv1: false, payload: payload) : nil
            return .ping(payload, pong: pong)
        default:
            self.receivedPong(payload)
            return .pong(payload)
        }
    }

    private mutating func failAction(_ code: WebSocketCloseCode, _ reason: String) -> InboundAction {
        self.fail(code: code, reason: reason)
        return .failed(.protocolViolation(code: code, reason: reason))
    }

    /// Keeps the inbound buffer small: an idle connection holds no read buffer at all, and consumed bytes are
    /// dropped when they pile up.
    private mutating func compactInbound() {
        if self.inbound.readableBytes == 0 {
            self.inbound = Self.emptyBuffer
        } else if self.inbound.readerIndex > 65536 {
            self.inbound.discardReadBytes()
        }
    }
}
