import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import WebSocketEngine

#if canImport(Glibc)
import Glibc
#endif

/// The load generator. Connections are spread over several loopback source addresses.
@main
struct WSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsbench", abstract: "Measure a WebSocket server on loopback.",
        subcommands: [Echo.self, Hold.self, Connect.self, Broadcast.self])
}

/// Options every mode shares.
struct Target: ParsableArguments {
    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 9300
    @Option(help: "Source addresses to spread connections over.") var sources = "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"
    @Option(help: "Connections opened at once while connecting.") var connectConcurrency = 64
    @Option(help: "Event-loop threads of the generator.") var threads = 1
    @Option(help: "A name for the server, copied into the report.") var label: String?
    @Flag(help: "Print one JSON line (for scripts/bench.sh) instead of indented JSON.") var json = false

    func url(_ path: String) -> String { "ws://\(self.host):\(self.port)\(path)" }

    /// Opens `count` connections to `path`, `connectConcurrency` at a time.
    func open(_ count: Int, path: String) async throws -> [WebSocket] {
        let sources = try self.sources.split(separator: ",").map { try SocketAddress(ipAddress: String($0), port: 0) }
        var sockets: [WebSocket] = []
        sockets.reserveCapacity(count)
        try await withThrowingTaskGroup(of: WebSocket.self) { group in
            var started = 0
            func startNext() {
                let source = sources[started % sources.count]
                started += 1
                group.addTask {
                    try await WebSocketClient.connect(to: self.url(path), configuration: .init(localAddress: source))
                }
            }
            while started < min(count, self.connectConcurrency) { startNext() }
            while let socket = try await group.next() {
                sockets.append(socket)
                if started < count { startNext() }
            }
        }
        return sockets
    }
}

func milliseconds(_ amount: TimeAmount) -> String {
    let hundredths = (amount.nanoseconds + 5_000) / 10_000
    return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100) ms"
}

struct Broadcast: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "N subscribers in a group, one publisher: time until the last subscriber has each message.")

    @OptionGroup var target: Target
    @Option(help: "Subscribers.") var subscribers = 1000
    @Option(help: "Messages to broadcast (one at a time).") var messages = 20
    @Option(help: "Message size in bytes.") var size = 100

    /// Counts receipts of the current round and wakes the publisher when all arrived.
    final class Round: Sendable {
        struct State {
            var expected = 0
            var received = 0
            var last = NIODeadline.distantPast
            var waiter: CheckedContinuation<NIODeadline, Never>?
        }
        let state = NIOLockedValueBox(State())

        func arrived() {
            let now = NIODeadline.now()
            let waiter: (CheckedContinuation<NIODeadline, Never>, NIODeadline)? = self.state.withLockedValue { state in
                state.received += 1
                state.last = max(state.last, now)
                guard state.received == state.expected, let waiter = state.waiter else { return nil }
                state.waiter = nil
                return (waiter, state.last)
            }
            if let (waiter, last) = waiter { waiter.resume(returning: last) }
        }

        func wait(expected: Int) async -> NIODeadline {
            await withCheckedContinuation { continuation in
                let done: NIODeadline? = self.state.withLockedValue { state in
                    state.expected = expected
                    if state.received >= expected { return state.last }
                    state.waiter = continuation
                    return nil
                }
                if let done { continuation.resume(returning: done) }
            }
        }

        func reset() { self.state.withLockedValue { $0 = State() } }
    }

    func run() async throws {
        let sockets = try await self.target.open(self.subscribers, path: "/feed")
        let publisher = try await WebSocketClient.connect(to: self.target.url("/publish"))
        let round = Round()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for socket in sockets {
                group.addTask {
                    for await event in socket.events {
                        if case .text = event { round.arrived() }
                    }
                }
            }
            var latencies: [TimeAmount] = []
            var serverTimes: [TimeAmount] = []
            let payload = String(repeating: "x", count: self.size)
            let started = NIODeadline.now()
            let cpuStart = processCPUNanos()
            for _ in 0..<self.messages {
                round.reset()
                let sent = NIODeadline.now()
                try await publisher.send(text: payload)
                let last = await round.wait(expected: sockets.count)
                latencies.append(last - sent)
                _ = try await publisher.receive()  // the gateway's delivery report, sent when broadcast() returned
                serverTimes.append(NIODeadline.now() - sent)
            }
            let elapsed = NIODeadline.now() - started
            let sorted = latencies.sorted()
            let server = serverTimes.sorted()
            let deliveries = Double(sockets.count * self.messages) / (Double(elapsed.nanoseconds) / 1e9)
            if !self.target.json {
                print("broadcast: \(sockets.count) subscribers, \(self.messages) messages of \(self.size) B")
                print("  time until the last subscriber had it: median \(milliseconds(sorted[sorted.count / 2])), min \(milliseconds(sorted.first!)), max \(milliseconds(sorted.last!))")
                print("  publisher's report of the broadcast call (upper bound of the server's share): median \(milliseconds(server[server.count / 2]))")
            }
            var errors: [String: Int] = [:]
            if sockets.count < self.subscribers { errors["subscriber failed to connect"] = self.subscribers - sockets.count }
            var report = Report(mode: "broadcast", label: self.target.label, errors: errors)
            report.connections = sockets.count
            report.size = self.size
            report.messages = self.messages
            report.lastReceivedMillisMedian = Double(sorted[sorted.count / 2].nanoseconds) / 1e6
            report.lastReceivedMillisMax = Double(sorted.last!.nanoseconds) / 1e6
            report.deliveriesPerSecond = deliveries.rounded()
            report.generatorCPUPercent = (Double(processCPUNanos() - cpuStart) / Double(elapsed.nanoseconds) * 1000).rounded() / 10
            report.emit(json: self.target.json)
            for socket in sockets { socket.startClose() }
            try await publisher.close()
            try await group.waitForAll()
        }
    }
}

