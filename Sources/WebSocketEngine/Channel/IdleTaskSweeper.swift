import NIOCore

/// Ends the consumer tasks of one event loop's connections (see ``WebSocket/deliverEvents(consumer:)``) that waited
/// a whole sweep period for an event. A busy connection keeps its task, parked between events, so that no task is
/// started per message; a connection idle for one to two periods holds none.
final class IdleTaskSweeper {
    /// How often the sweep runs (while a task is registered).
    static let period = TimeAmount.seconds(1)

    let eventLoop: any EventLoop
    private var pumps: [EventPump] = []
    private var scheduled = false
    /// Incremented by every sweep; a pump notes it when it takes an event.
    private(set) var generation = 0

    private init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let shared = PerEventLoop { NIOLoopBound(IdleTaskSweeper($0), eventLoop: $0) }

    /// The one sweeper of `eventLoop`, kept for the life of the process (call on `eventLoop`).
    static func of(_ eventLoop: any EventLoop) -> IdleTaskSweeper {
        self.shared.of(eventLoop).value
    }

    /// A pump's task started.
    func add(_ pump: EventPump) {
        pump.slot = self.pumps.count
        pump.lastActive = self.generation
        self.pumps.append(pump)
        self.scheduleIfNeeded()
    }

    /// A pump's task ended.
    func remove(_ pump: EventPump) {
        let slot = pump.slot
        guard slot >= 0, slot < self.pumps.count, self.pumps[slot] === pump else { return }
        let last = self.pumps.removeLast()
        if last !== pump {
            self.pumps[slot] = last
            last.slot = slot
        }
        pump.slot = -1
    }

    private func scheduleIfNeeded() {
        guard !self.scheduled, !self.pumps.isEmpty else { return }
        self.scheduled = true
        self.eventLoop.assumeIsolated().scheduleTask(in: Self.period) { self.sweep() }
    }

    private func sweep() {
        self.scheduled = false
        self.generation += 1
        // Retiring only resumes a parked task; it leaves the list when it runs, so the list is stable here.
        for pump in self.pumps where pump.lastActive < self.generation - 1 {
            pump.handler.retireIfParked()
        }
        self.scheduleIfNeeded()
    }
}

/// Bound to its event loop: shared between the loop's connections through `NIOLoopBound`.
@available(*, unavailable)
extension IdleTaskSweeper: Sendable {}
