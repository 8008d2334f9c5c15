import ArgumentParser
import NIOConcurrencyHelpers
import NIOCore
import WebSocketEngine

/// Counts the receipts of the message being broadcast and wakes the publisher when every subscriber has it.
///
/// Subscribers call `arrived()` from their event loops (raw connections, `ConnectionMode.subscribe`), so a receipt
/// costs one uncontended lock and a clock read, not a task or an async sequence.
final class BroadcastRound: Sendable {
    private struct State {
        var expected = 0
        var received = 0
        var last: UInt64 = 0
        var waiter: CheckedContinuation<UInt64, Never>?
    }

    private let state = NIOLockedValueBox(State())

    /// One subscriber received the message.
    func arrived() {
        let now = monotonicNanos()
        let waiter: (CheckedContinuation<UInt64, Never>, UInt64)? = self.state.withLockedValue { state in
            state.received += 1
            state.last = max(state.last, now)
            guard state.received == state.expected, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.last)
        }
        if let (waiter, last) = waiter { waiter.resume(returning: last) }
    }

    /// Waits until `expected` receipts arrived; returns the monotonic time of the last one.
    func wait(expected: Int) async -> UInt64 {
        await withCheckedContinuation { continuation in
            let done: UInt64? = self.state.withLockedValue { state in
                state.expected = expected
                if state.received >= expected { return state.last }
                state.waiter = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Starts counting the next message.
    func reset() { self.state.withLockedValue { $0 = State() } }
}

/// N subscribers on `/feed`, one publisher on `/publish`.
///
/// The subscribers are raw connections on the generator's own event loops (like every other mode), so receiving
/// 10,000 messages costs the generator a read and a frame parse each; the publisher is the engine's client.
struct Broadcast: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "N subscribers in a group, one publisher: time until the last subscriber has each message.")

    @OptionGroup var target: Target
    @Option(help: "Subscribers.") var subscribers = 1000
    @Option(help: "Messages to broadcast (one at a time).") var messages = 20
    @Option(help: "Message size in bytes.") var size = 100

    func run() async throws {
        let round = BroadcastRound()
        let plan = RunPlan(
            mode: .subscribe(round), host: self.target.host, port: self.target.port, path: "/feed",
            payload: Array(repeating: UInt8(ascii: "x"), count: self.size), text: true, compressedPayload: nil, inFlight: 1)
        let generator = try Generator(target: self.target)
        let sockets = await generator.openAll(self.subscribers, plan: plan)
        let publisher = try await WebSocketClient.connect(to: self.target.url("/publish"))
        var latencies: [UInt64] = []
        var serverTimes: [UInt64] = []
        let payload = String(repeating: "x", count: self.size)
        let started = monotonicNanos()
        let cpuStart = processCPUNanos()
        for _ in 0..<self.messages {
            round.reset()
            let sent = monotonicNanos()
            try await publisher.send(text: payload)
            let last = await round.wait(expected: sockets.count)
            latencies.append(last - sent)
            _ = try await publisher.receive()  // the gateway's delivery report, sent when broadcast() returned
            serverTimes.append(monotonicNanos() - sent)
        }
        let elapsed = monotonicNanos() - started
        let cpu = processCPUNanos() - cpuStart
        try await publisher.close()
        await generator.closeAll(sockets)
        let stats = await generator.collect()
        await generator.shutdown()

        let sorted = latencies.sorted()
        let server = serverTimes.sorted()
        func millis(_ nanos: UInt64) -> Double { Double(nanos) / 1e6 }
        if !self.target.json {
            print("broadcast: \(sockets.count) subscribers, \(self.messages) messages of \(self.size) B")
            print("  time until the last subscriber had it: median \(millis(sorted[sorted.count / 2])) ms, min \(millis(sorted.first!)) ms, max \(millis(sorted.last!)) ms")
            print("  publisher's report of the broadcast call (upper bound of the server's share): median \(millis(server[server.count / 2])) ms")
        }
        var report = Report(mode: "broadcast", label: self.target.label, errors: stats.errors)
        if sockets.count < self.subscribers {
            report.errorKinds["subscriber failed to connect", default: 0] += self.subscribers - sockets.count
        }
        // Every subscriber must have had every message exactly once.
        let expected = sockets.count * self.messages
        if stats.allMessages != expected {
            report.errorKinds["messages received \(stats.allMessages), expected \(expected)", default: 0] += 1
        }
        report.errors = report.errorKinds.values.reduce(0, +)
        report.connections = sockets.count
        report.size = self.size
        report.messages = self.messages
        report.lastReceivedMillisMedian = millis(sorted[sorted.count / 2])
        report.lastReceivedMillisMax = millis(sorted.last!)
        report.deliveriesPerSecond = (Double(expected) / (Double(elapsed) / 1e9)).rounded()
        report.generatorCPUPercent = (Double(cpu) / Double(elapsed) * 1000).rounded() / 10
        report.emit(json: self.target.json)
    }
}
