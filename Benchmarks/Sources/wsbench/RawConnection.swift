import Histogram
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in nanoseconds.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// The part of the run during which results count: messages sent before `start` (warm-up) and received after
/// `end` (drain) are not counted.
struct Window: Sendable {
    var start: UInt64
    var end: UInt64
    func contains(_ time: UInt64) -> Bool { time >= self.start && time < self.end }
}

/// What a connection does once its handshake is done.
enum ConnectionMode: Sendable {
    /// Keeps `inFlight` copies of the message outstanding until the window ends.
    case echo
    /// Sends the message once and, when it comes back, closes cleanly.
    case connectOnce
    /// Sits idle, answering pings.
    case hold
    /// Counts every message it receives in the round (a broadcast subscriber); sends nothing.
    case subscribe(BroadcastRound)
}

/// Sent down a pipeline from any thread to start or stop a connection.
enum ConnectionCommand: Sendable {
    case start(Window)
    case stop
}

/// Everything the connections of one run share (read-only).
final class RunPlan: Sendable {
    let mode: ConnectionMode
    /// The whole upgrade request.
    let request: ByteBuffer
    /// The message as one masked client frame, written as is for every send (refcounted, never copied).
    let frame: ByteBuffer
    /// The uncompressed payload size each echo must have.
    let size: Int
    let inFlight: Int
    let offerDeflate: Bool

    /// The accept value for the fixed key below (RFC 6455 §1.3's example).
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="
    static let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    /// What the response must hold, as bytes: its status line, its accept header (name in lower case), the deflate token.
    static let statusLine = Array("HTTP/1.1 101".utf8)
    static let acceptLine = Array("sec-websocket-accept: \(accept)\r\n".utf8)
    static let deflateToken = Array("permessage-deflate".utf8)

    init(mode: ConnectionMode, host: String, port: Int, path: String, payload: [UInt8], text: Bool,
         compressedPayload: [UInt8]?, inFlight: Int) {
        self.mode = mode
        self.size = payload.count
        self.inFlight = max(1, inFlight)
        self.offerDeflate = compressedPayload != nil
        var head = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Key: \(Self.key)\r\nSec-WebSocket-Version: 13\r\n"
        if self.offerDeflate {
            // The client resets its context per message, so one pre-compressed frame serves every send.
            head += "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
        }
        head += "\r\n"
        self.request = ByteBuffer(string: head)
        self.frame = WireFrame.client(
            opcode: text ? 0x1 : 0x2, payload: compressedPayload ?? payload, rsv1: compressedPayload != nil)
    }
}

/// Client frames, masked with a fixed key (the server cannot tell; a load generator need not be unpredictable).
enum WireFrame {
    static let maskKey: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    static func client(opcode: UInt8, payload: [UInt8], rsv1: Bool = false) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(payload.count + 14)
        buffer.writeInteger(UInt8(0x80 | (rsv1 ? 0x40 : 0) | opcode))
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        buffer.writeBytes(self.maskKey)
        var masked = payload
        for index in masked.indices { masked[index] ^= self.maskKey[index & 3] }
        buffer.writeBytes(masked)
        return buffer
    }

    /// A close frame with status 1000.
    static let close = client(opcode: 0x8, payload: [0x03, 0xE8])
}

/// Results of the connections on one event loop; touched only on that loop until the run is over.
final class LoopStats: @unchecked Sendable {
    var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    var messages = 0
    /// Every echo received, counted or not (for allocations per message).
    var allMessages = 0
    var bytes = 0
    var errors: [String: Int] = [:]

    func error(_ kind: String) { self.errors[kind, default: 0] += 1 }
}

/// One benchmark connection on raw NIO: the upgrade, a minimal frame decoder, pings answered, the echo loop.
final class BenchHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State { case handshaking, open, closing, closed }

    private let plan: RunPlan
    private let stats: LoopStats
    private let opened: EventLoopPromise<Void>
    private let finished: EventLoopPromise<Void>
    private var state = State.handshaking
    private var input: ByteBuffer?
    private var window: Window?
    private var sendTimes: [UInt64]
    private var sendHead = 0
    private var outstanding = 0
    private var messageLength = 0
    private var inMessage = false
    private var messageCompressed = false
    private var needsFlush = false
    /// The one timer that closes TCP if the server does not (cancelled when the connection goes).
    private var closeTimer: Scheduled<Void>?

    init(plan: RunPlan, stats: LoopStats, opened: EventLoopPromise<Void>, finished: EventLoopPromise<Void>) {
        self.plan = plan
        self.stats = stats
        self.opened = opened
        self.finished = finished
        self.sendTimes = Array(repeating: 0, count: plan.inFlight)
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(self.plan.request), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch self.state {
        case .handshaking:
            self.stats.error("closed during handshake")
            self.opened.fail(ChannelError.eof)
        case .open:
            self.stats.error("closed without a closing handshake")
        case .closing, .closed:
            break
        }
        self.state = .closed
        self.closeTimer?.cancel()
        self.closeTimer = nil
        self.finished.succeed()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.stats.error("I/O error: \(error)")
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let command = event as? ConnectionCommand else { return context.fireUserInboundEventTriggered(event) }
        switch command {
        case .start(let window):
            self.window = window
            switch self.plan.mode {
            case .echo:
                let now = monotonicNanos()
                for _ in 0..<self.plan.inFlight { self.send(context: context, at: now) }
                context.flush()
            case .connectOnce, .hold, .subscribe:
                break
            }
        case .stop:
            self.startClose(context: context)
            context.flush()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        if self.input == nil {
            self.input = bytes
        } else {
            self.input!.writeBuffer(&bytes)
        }
        if self.state == .handshaking {
            guard self.readHandshake(context: context) else { return }
        }
        self.readFrames(context: context)
        if self.input?.readableBytes == 0 { self.input = nil }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
    }

    /// Parses the 101 response; returns whether frames may follow.
    private func readHandshake(context: ChannelHandlerContext) -> Bool {
        guard let view = self.input?.readableBytesView,
              let end = view.firstRange(of: [13, 10, 13, 10] as [UInt8])
        else {
            if (self.input?.readableBytes ?? 0) > 16_384 { self.fail(context: context, "handshake response too long") }
            return false
        }
        let head = view[view.startIndex..<end.upperBound]
        self.input!.moveReaderIndex(to: end.upperBound)
        guard head.starts(with: RunPlan.statusLine), Self.hasHeader(head, RunPlan.acceptLine) else {
            self.fail(context: context, "handshake refused")
            self.opened.fail(ChannelError.inappropriateOperationForState)
            return false
        }
        if self.plan.offerDeflate, head.firstRange(of: RunPlan.deflateToken) == nil {
            self.stats.error("deflate offer not accepted")
        }
        self.state = .open
        self.opened.succeed()
        if case .connectOnce = self.plan.mode {
            self.window = Window(start: 0, end: .max)
            self.send(context: context, at: monotonicNanos())
            context.flush()
        }
        return true
    }

    private func readFrames(context: ChannelHandlerContext) {
        while let buffer = self.input, buffer.readableBytes >= 2, self.state != .closed {
            let start = buffer.readerIndex
            let first = buffer.getInteger(at: start, as: UInt8.self)!
            let second = buffer.getInteger(at: start + 1, as: UInt8.self)!
            var headerLength = 2
            var length = Int(second & 0x7F)
            if length == 126 {
                guard let extended = buffer.getInteger(at: start + 2, as: UInt16.self) else { return }
                length = Int(extended)
                headerLength = 4
            } else if length == 127 {
                guard let extended = buffer.getInteger(at: start + 2, as: UInt64.self) else { return }
                guard extended < 1 << 40 else { return self.fail(context: context, "absurd frame length") }
                length = Int(extended)
                headerLength = 10
            }
            if second & 0x80 != 0 { return self.fail(context: context, "masked frame from the server") }
            guard buffer.readableBytes >= headerLength + length else { return }
            let fin = first & 0x80 != 0
            let opcode = first & 0x0F
            switch opcode {
            case 0x0:
                guard self.inMessage else { return self.fail(context: context, "continuation without a message") }
                self.messageLength += length
                if fin { self.messageDone(context: context) }
            case 0x1, 0x2:
                guard !self.inMessage else { return self.fail(context: context, "new message inside a fragmented one") }
                self.messageLength = length
                self.messageCompressed = first & 0x40 != 0
                self.inMessage = true
                if fin { self.messageDone(context: context) }
            case 0x8:
                self.input!.moveReaderIndex(forwardBy: headerLength + length)
                self.receivedClose(context: context)
                continue
            case 0x9:
                let payload = buffer.getBytes(at: start + headerLength, length: length) ?? []
                context.write(self.wrapOutboundOut(WireFrame.client(opcode: 0xA, payload: payload)), promise: nil)
                self.needsFlush = true
            case 0xA:
                break
            default:
                return self.fail(context: context, "unknown opcode \(opcode)")
            }
            self.input!.moveReaderIndex(forwardBy: headerLength + length)
        }
    }

    private func messageDone(context: ChannelHandlerContext) {
        self.inMessage = false
        // A compressed reply is not inflated (that would put the server's inflate cost on the generator); its size
        // cannot be checked.
        if !self.messageCompressed, self.messageLength != self.plan.size {
            self.stats.error("echo of the wrong length")
        }
        self.stats.allMessages += 1
        if case .subscribe(let round) = self.plan.mode { return round.arrived() }
        let now = monotonicNanos()
        guard self.outstanding > 0 else { return self.stats.error("unsolicited message") }
        let sent = self.sendTimes[self.sendHead]
        self.sendHead = (self.sendHead + 1) % self.sendTimes.count
        self.outstanding -= 1
        guard let window = self.window else { return }
        if window.contains(now), sent >= window.start {
            self.stats.messages += 1
            self.stats.bytes += self.plan.size
            _ = self.stats.latency.record(now - sent)
        }
        switch self.plan.mode {
        case .echo:
            if now < window.end, self.state == .open {
                self.send(context: context, at: now)
                self.needsFlush = true
            }
        case .connectOnce:
            self.startClose(context: context)
            self.needsFlush = true
        case .hold, .subscribe:
            break
        }
    }

    private func send(context: ChannelHandlerContext, at now: UInt64) {
        let slot = (self.sendHead + self.outstanding) % self.sendTimes.count
        self.sendTimes[slot] = now
        self.outstanding += 1
        context.write(self.wrapOutboundOut(self.plan.frame), promise: nil)
    }

    private func receivedClose(context: ChannelHandlerContext) {
        switch self.state {
        case .open:
            // The server started the close: answer, then let it close the TCP connection.
            self.stats.error("closed by the server")
            self.state = .closing
            context.writeAndFlush(self.wrapOutboundOut(WireFrame.close), promise: nil)
            self.closeSoon(context: context)
        case .closing:
            // Our close was answered; the server closes TCP first (so TIME_WAIT stays on its side).
            self.closeSoon(context: context)
        case .handshaking, .closed:
            break
        }
    }

    private func startClose(context: ChannelHandlerContext) {
        switch self.state {
        case .open:
            self.state = .closing
            context.write(self.wrapOutboundOut(WireFrame.close), promise: nil)
            self.closeSoon(context: context, after: .seconds(5))
        case .handshaking:
            self.state = .closing
            context.close(promise: nil)
        case .closing, .closed:
            break
        }
    }

    /// Whether the response head has the header line `line` (`name: value\r\n`), the name compared without case.
    private static func hasHeader(_ head: ByteBufferView, _ line: [UInt8]) -> Bool {
        let name = line.firstIndex(of: UInt8(ascii: ":")) ?? line.count
        var start = head.startIndex
        while let next = head[start...].firstIndex(of: 10) {
            let lineStart = next + 1
            if head.endIndex - lineStart >= line.count,
               zip(head[lineStart..<lineStart + name], line[..<name]).allSatisfy({ lowercased($0) == $1 }),
               head[(lineStart + name)..<(lineStart + line.count)].elementsEqual(line[name...]) {
                return true
            }
            start = lineStart
        }
        return false
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte | 0x20 : byte }

    /// Closes TCP if the server has not done so in time.
    private func closeSoon(context: ChannelHandlerContext, after delay: TimeAmount = .seconds(2)) {
        self.closeTimer?.cancel()
        let channel = context.channel
        self.closeTimer = context.eventLoop.scheduleTask(in: delay) { channel.close(promise: nil) }
    }

    private func fail(context: ChannelHandlerContext, _ kind: String) {
        self.stats.error(kind)
        self.state = .closed
        self.input = nil
        context.close(promise: nil)
    }
}
