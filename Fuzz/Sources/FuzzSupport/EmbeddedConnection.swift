import NIOCore
import NIOEmbedded
@_spi(Fuzzing) import WebSocketEngine

/// One connection of the engine on an `EmbeddedChannel`: its handler installed as after a completed handshake, its
/// events taken on the event loop by an ``EventRecorder``. Everything runs on the calling thread, with the
/// embedded loop's manual clock, so one input always does the same thing.
public final class EmbeddedConnection {
    /// The channel the connection runs on.
    public let channel: EmbeddedChannel
    /// The connection.
    public let socket: WebSocket
    /// What the connection reported, and what it sent back.
    public let recorder: EventRecorder
    /// Every byte the connection wrote, in order, once ``takeOutbound()`` or ``finish()`` collected it.
    public private(set) var written: [ByteBuffer] = []

    private static let address = try! SocketAddress(ipAddress: "127.0.0.1", port: 1)

    /// Installs a connection in `role`.
    ///
    /// - Parameters:
    ///   - echo: send every message back from the event loop (``WebSocket/trySend(_:)``).
    ///   - closeAfter: start a closing handshake of our own after this many events.
    public init(
        role: WebSocketRole,
        compression: PerMessageDeflateParameters?,
        configuration: WebSocketConfiguration,
        echo: Bool = false,
        closeAfter: Int? = nil
    ) {
        self.channel = EmbeddedChannel()
        do {
            try self.channel.connect(to: Self.address).wait()
            self.socket = try EngineFuzzingHooks.installConnection(
                on: self.channel, role: role, compression: compression, configuration: configuration)
        } catch {
            fatalError("cannot install a connection: \(error)")
        }
        self.recorder = EventRecorder(socket: self.socket, echo: echo, closeAfter: closeAfter)
        self.socket.deliverEvents(consumer: self.recorder)
        self.channel.embeddedEventLoop.run()
    }

    /// Whether the channel is still open.
    public var isActive: Bool { self.channel.isActive }

    /// Hands `bytes` to the connection as one read from the network, followed by the end of the read.
    public func receive(_ bytes: ByteBuffer) {
        guard self.channel.isActive else { return }
        _ = try? self.channel.writeInbound(bytes)
        self.channel.pipeline.fireChannelReadComplete()
        self.channel.embeddedEventLoop.run()
        self.takeOutbound()
    }

    /// Moves what the connection wrote since the last call into ``written``.
    public func takeOutbound() {
        while let buffer = try? self.channel.readOutbound(as: ByteBuffer.self) {
            self.written.append(buffer)
        }
    }

    /// Lets the timers run (the barrier's grace period, a zero close timeout), then closes the channel and
    /// collects what was written.
    public func finish() {
        // The handler's close deadlines are read from the real clock; the embedded loop's starts at zero.
        self.channel.embeddedEventLoop.advanceTime(to: .now() + .seconds(2))
        self.takeOutbound()
        _ = try? self.channel.finish(acceptAlreadyClosed: true)
        self.takeOutbound()
    }
}

/// Takes a connection's events on its event loop (never needing a task), recording them; echoes messages back and
/// starts a close of its own when asked to.
///
/// `@unchecked Sendable`: ``WebSocketEventConsumer`` must be `Sendable`, and this one is only ever used on the
/// embedded channel's loop, which is the fuzzing thread.
public final class EventRecorder: WebSocketEventConsumer, @unchecked Sendable {
    /// Every event, in order.
    public private(set) var events: [WebSocketEvent] = []
    /// The messages sent back (those ``WebSocket/trySend(_:)`` took).
    public private(set) var echoed: [WebSocketMessage] = []
    /// Weak: the connection holds its consumer.
    private weak var socket: WebSocket?
    private let echo: Bool
    private let closeAfter: Int?

    init(socket: WebSocket, echo: Bool, closeAfter: Int?) {
        self.socket = socket
        self.echo = echo
        self.closeAfter = closeAfter
    }

    /// The data messages received, in order.
    public var messages: [WebSocketMessage] {
        self.events.compactMap(\.message)
    }

    public func take(_ event: WebSocketEvent) -> Bool {
        self.events.append(event)
        if self.echo, let message = event.message, let socket = self.socket, (try? socket.trySend(message)) == true {
            self.echoed.append(message)
        }
        if self.events.count == self.closeAfter {
            self.socket?.startClose(code: .goingAway, reason: "closed by the fuzz target")
        }
        return true
    }

    public func finish() async {}
}
