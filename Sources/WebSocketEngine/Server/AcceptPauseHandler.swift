import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How long a listener stops accepting after a resource error: 50 ms, doubling while accepting keeps failing, at
/// most a second; the first connection accepted again starts over.
struct AcceptBackoff: Equatable {
    static let first = TimeAmount.milliseconds(50)
    static let longest = TimeAmount.seconds(1)

    private(set) var next = Self.first

    /// Whether an accept error is about resources (descriptors, kernel memory), after which retrying at once
    /// fails again: the connection stays in the kernel's backlog instead.
    static func isResourceError(_ errno: CInt) -> Bool {
        errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM
    }

    /// Accepting failed: how long to pause.
    mutating func failed() -> TimeAmount {
        defer { self.next = min(self.next * 2, Self.longest) }
        return self.next
    }

    /// A connection was accepted.
    mutating func accepted() {
        self.next = Self.first
    }
}

/// Pauses the listener's accepts after a resource error (out of descriptors, say) instead of retrying at once.
///
/// SwiftNIO keeps a listener registered for readability until an accept succeeds, so a failing accept is retried
/// by the event loop as fast as it can (tens of thousands of `accept4` calls a second), whatever a handler does
/// with `read()`. The handler therefore holds a spare descriptor, as libev and nginx do: on `EMFILE` it closes the
/// spare so that the next accept succeeds, which ends SwiftNIO's read, and then pauses (``AcceptBackoff``). After
/// the pause it reads again only once it holds a spare again, so a listener out of descriptors waits, with its
/// clients in the kernel's backlog, instead of spinning. Reports each pause to `onEvent`.
final class AcceptPauseHandler: ChannelDuplexHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel
    typealias OutboundIn = Never

    private var backoff = AcceptBackoff()
    private var pausedUntil: NIODeadline?
    private var scheduledRead: Scheduled<Void>?
    /// The spare descriptor (of /dev/null), or -1 while released.
    private var spare: CInt = -1
    /// The next accept takes the released spare's place: it does not end the backoff.
    private var acceptingWithSpare = false
    private let onEvent: (@Sendable (WebSocketServerEvent) -> Void)?

    init(onEvent: (@Sendable (WebSocketServerEvent) -> Void)?) {
        self.onEvent = onEvent
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.spare = Self.openSpare()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.releaseSpare()
        self.scheduledRead?.cancel()
        self.scheduledRead = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.acceptingWithSpare {
            self.acceptingWithSpare = false
        } else if self.pausedUntil == nil {
            self.backoff.accepted()
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        guard self.scheduledRead == nil else { return }
        guard let until = self.pausedUntil else { return context.read() }
        self.scheduledRead = context.eventLoop.assumeIsolated().scheduleTask(deadline: until) {
            self.scheduledRead = nil
            self.resume(context: context)
        }
    }

    /// The pause is over: reads again if a spare descriptor could be had, else pauses once more.
    private func resume(context: ChannelHandlerContext) {
        if self.spare < 0 { self.spare = Self.openSpare() }
        guard self.spare >= 0 else {
            self.pausedUntil = .now() + self.backoff.failed()
            return self.read(context: context)
        }
        self.pausedUntil = nil
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, AcceptBackoff.isResourceError(error.errnoCode) else {
            return context.fireErrorCaught(error)
        }
        // Failures while paused are the same episode: SwiftNIO's read ends at the next successful accept.
        guard self.pausedUntil == nil else { return }
        let pause = self.backoff.failed()
        self.pausedUntil = .now() + pause
        if self.spare >= 0 {
            self.releaseSpare()
            self.acceptingWithSpare = true
        }
        self.onEvent?(.acceptFailed(errno: error.errnoCode, pause: pause))
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.scheduledRead?.cancel()
        self.scheduledRead = nil
        self.releaseSpare()
        context.fireChannelInactive()
    }

    private func releaseSpare() {
        if self.spare >= 0 { closeDescriptor(self.spare) }
        self.spare = -1
    }

    private static func openSpare() -> CInt {
        open("/dev/null", O_RDONLY | O_CLOEXEC)
    }
}

/// Bound to the listener's event loop.
@available(*, unavailable)
extension AcceptPauseHandler: Sendable {}

/// `close(2)`, out of reach of the handler's own `close(context:mode:promise:)`.
private func closeDescriptor(_ descriptor: CInt) {
    _ = close(descriptor)
}
