import NIOCore

/// The handler's timers: the closing handshake's deadline, keepalive pings and the idle timeout. Each fires on the
/// channel's event loop and hands its decision to the protocol state machine.
extension WebSocketChannelHandler {

    func scheduleClose(at deadline: NIODeadline) {
        guard let context = self.context else { return }
        self.run(self.delivery.flushDue())
        self.closeTimer?.cancel()
        self.closeTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            if self.machine.closeTimerFired(now: .now()) {
                self.context?.close(promise: nil)
            }
        }
    }

    func scheduleKeepalive(at deadline: NIODeadline) {
        guard let context = self.context else { return }
        self.keepaliveTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            guard self.context != nil else { return }
            switch self.machine.keepaliveTimerFired(now: .now()) {
            case .sendPing(let frame, let next):
                self.write(frame, promise: nil)
                self.run(self.delivery.flushDue())
                self.scheduleKeepalive(at: next)
            case .wait(let next):
                self.scheduleKeepalive(at: next)
            case .pongTimedOut:
                self.deliver(.error(.pongTimeout))
                self.run(self.delivery.failureDelivered(reader: self.readerProgress))
            case .stop:
                break
            }
        }
    }

    func scheduleIdle(at deadline: NIODeadline) {
        guard let context = self.context else { return }
        self.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            guard let (idle, next) = self.machine.idleTimerFired(now: .now()) else { return }
            if idle { self.deliver(.idleTimeout) }
            self.scheduleIdle(at: next)
        }
    }
}
