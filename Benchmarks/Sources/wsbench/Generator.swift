import Foundation
import Histogram
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The raw-NIO client side of a run: an event loop group, per-loop results, connections spread over sources.
final class Generator: Sendable {
    let group: MultiThreadedEventLoopGroup
    let target: Target
    private let stats: [ObjectIdentifier: LoopStats]
    private let sources: [SocketAddress]
    /// The server's address, resolved once.
    private let address: SocketAddress

    init(target: Target) throws {
        self.target = target
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: target.threads)
        var stats: [ObjectIdentifier: LoopStats] = [:]
        for loop in self.group.makeIterator() { stats[ObjectIdentifier(loop)] = LoopStats() }
        self.stats = stats
        self.sources = try target.sources.split(separator: ",").map { try SocketAddress(ipAddress: String($0), port: 0) }
        self.address = try SocketAddress.makeAddressResolvingHost(target.host, port: target.port)
    }

    func shutdown() async { try? await self.group.shutdownGracefully() }

    /// One open connection.
    struct Connection: Sendable {
        let channel: any Channel
        let finished: EventLoopFuture<Void>
    }

    /// A connection being set up: the channel once TCP is up, the end of the upgrade, and its closing.
    struct Attempt {
        let channel: EventLoopFuture<any Channel>
        /// Succeeds when the 101 response was accepted; fails when the connection or the upgrade failed.
        let opened: EventLoopFuture<Void>
        /// Succeeds when the connection is gone (whatever happened before).
        let finished: EventLoopFuture<Void>
    }

    /// Starts a connection on `loop` without a Swift task: everything it does runs in callbacks on that loop.
    ///
    /// The target was resolved once, so no connect goes through a resolver thread or Happy Eyeballs timers (each of
    /// which would cost the generator more than the handshake itself).
    func start(plan: RunPlan, index: Int, on loop: any EventLoop) -> Attempt {
        let stats = self.stats[ObjectIdentifier(loop)]!
        let opened = loop.makePromise(of: Void.self)
        let finished = loop.makePromise(of: Void.self)
        let channel = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .bind(to: self.sources[index % self.sources.count])
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        BenchHandler(plan: plan, stats: stats, opened: opened, finished: finished))
                }
            }
            .connect(to: self.address)
        channel.whenFailure { error in
            stats.error("connect failed: \(error)")
            opened.fail(error)
            finished.succeed()
        }
        return Attempt(channel: channel, opened: opened.futureResult, finished: finished.futureResult)
    }

    /// Connects and completes the upgrade; the connection then runs `plan`.
    func connect(plan: RunPlan, index: Int) async throws -> Connection {
        let attempt = self.start(plan: plan, index: index, on: self.group.next())
        let channel = try await attempt.channel.get()
        try await attempt.opened.get()
        return Connection(channel: channel, finished: attempt.finished)
    }

    /// Opens `count` connections, `target.connectConcurrency` at a time; failures are counted, not thrown.
    func openAll(_ count: Int, plan: RunPlan) async -> [Connection] {
        await withTaskGroup(of: Connection?.self) { group in
            var started = 0
            var connections: [Connection] = []
            connections.reserveCapacity(count)
            func startNext() {
                let index = started
                started += 1
                group.addTask { try? await self.connect(plan: plan, index: index) }
            }
            while started < min(count, self.target.connectConcurrency) { startNext() }
            while let connection = await group.next() {
                if let connection { connections.append(connection) }
                if started < count { startNext() }
            }
            return connections
        }
    }

    /// Sends a command to every connection.
    func command(_ command: ConnectionCommand, _ connections: [Connection]) {
        for connection in connections { connection.channel.pipeline.fireUserInboundEventTriggered(command) }
    }

    /// Closes every connection cleanly and waits (bounded) until they are gone.
    func closeAll(_ connections: [Connection]) async {
        self.command(.stop, connections)
        for connection in connections { try? await connection.finished.get() }
    }

    /// The results of every loop, merged (read on each loop, so call it once the run is over).
    func collect() async -> LoopStats {
        let total = LoopStats()
        for loop in self.group.makeIterator() {
            let stats = self.stats[ObjectIdentifier(loop)]!
            let copy: (Histogram<UInt64>, Int, Int, Int, [String: Int])? =
                try? await loop.submit { (stats.latency, stats.messages, stats.allMessages, stats.bytes, stats.errors) }.get()
            guard let copy else { continue }
            total.latency.add(copy.0)
            total.messages += copy.1
            total.allMessages += copy.2
            total.bytes += copy.3
            total.errors.merge(copy.4, uniquingKeysWith: +)
        }
        return total
    }
}

/// CPU time (user + system) of this process, in nanoseconds.
func processCPUNanos() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func nanos(_ time: timeval) -> UInt64 { UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_usec) * 1_000 }
    return nanos(usage.ru_utime) + nanos(usage.ru_stime)
}

/// Sleeps until a monotonic time.
func sleep(until deadline: UInt64) async {
    let now = monotonicNanos()
    if deadline > now { try? await Task.sleep(nanoseconds: deadline - now) }
}

/// Resident memory of a process, from /proc/PID/status.
func residentBytes(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.filter(\.isNumber)).map { $0 * 1024 }
    }
    return nil
}

/// Deterministic payloads: JSON-like text (compresses like real traffic) or pseudo-random binary.
enum Payload {
    static func make(size: Int, text: Bool) -> [UInt8] {
        if text {
            var out: [UInt8] = []
            out.reserveCapacity(size + 128)
            var id = 1000
            out.append(UInt8(ascii: "["))
            while out.count < size {
                id += 7
                let record = #"{"id":\#(id),"user":"user-\#(id % 97)","active":\#(id % 3 == 0),"score":\#(id % 1000).\#(id % 10),"tags":["t\#(id % 5)","blue"]},"#
                out.append(contentsOf: record.utf8)
            }
            return Array(out.prefix(size))
        }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<size).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }
}

/// The result line of a run.
struct Report: Encodable {
    var mode: String
    var label: String?
    var connections: Int?
    var inFlight: Int?
    var size: Int?
    var seconds: Double?
    var messages: Int?
    var messagesTotal: Int?
    var messagesPerSecond: Double?
    var megabytesPerSecond: Double?
    var handshakesPerSecond: Double?
    var p50Micros: Double?
    var p90Micros: Double?
    var p99Micros: Double?
    var p999Micros: Double?
    var maxMicros: Double?
    var errors: Int
    var errorKinds: [String: Int]
    var generatorCPUPercent: Double?
    var generatorThreads: Int?
    var rssBeforeKib: Int?
    var rssAfterKib: Int?
    var rssAfterCloseKib: Int?
    var bytesPerConnection: Double?
    var lastReceivedMillisMedian: Double?
    var lastReceivedMillisMax: Double?
    var deliveriesPerSecond: Double?

    init(mode: String, label: String?, errors: [String: Int]) {
        self.mode = mode
        self.label = label
        self.errors = errors.values.reduce(0, +)
        self.errorKinds = errors
    }

    mutating func latency(_ histogram: Histogram<UInt64>) {
        guard histogram.totalCount > 0 else { return }
        func micros(_ nanos: UInt64) -> Double { (Double(nanos) / 10).rounded() / 100 }
        self.p50Micros = micros(histogram.valueAtPercentile(50))
        self.p90Micros = micros(histogram.valueAtPercentile(90))
        self.p99Micros = micros(histogram.valueAtPercentile(99))
        self.p999Micros = micros(histogram.valueAtPercentile(99.9))
        self.maxMicros = micros(histogram.max)
    }

    /// Prints the report: one JSON line for the runner, or indented JSON for a person.
    func emit(json: Bool) {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = json ? [.sortedKeys] : [.sortedKeys, .prettyPrinted]
        let data = (try? encoder.encode(self)) ?? Data()
        print(String(decoding: data, as: UTF8.self))
        fflush(nil)
    }
}
