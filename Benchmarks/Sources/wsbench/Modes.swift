import ArgumentParser
import CompressNIO
import Histogram
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Options of the measured window.
struct Timing: ParsableArguments {
    @Option(help: "Seconds measured.") var duration: Double = 10
    @Option(help: "Seconds of load before measuring starts.") var warmup: Double = 2

    func window(from now: UInt64) -> Window {
        let start = now + UInt64(self.warmup * 1e9)
        return Window(start: start, end: start + UInt64(self.duration * 1e9))
    }
}

/// N connections, each keeping `in-flight` messages outstanding: throughput and latency of echoes.
struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pipelined echo: messages/s, MB/s, latency percentiles.")

    @OptionGroup var target: Target
    @OptionGroup var timing: Timing
    @Option(help: "Connections.") var connections = 100
    @Option(help: "Message size in bytes.") var size = 64
    @Option(help: "Messages outstanding per connection.") var inFlight = 1
    @Option(help: "Path of the echo endpoint.") var path = "/echo"
    @Flag(help: "Send text (JSON-like) messages.") var text = false
    @Flag(help: "Send binary messages (the default).") var binary = false
    @Flag(help: "Offer permessage-deflate (client_no_context_takeover) and send compressed messages.") var deflate = false

    func validate() throws {
        if self.text && self.binary { throw ValidationError("--text and --binary exclude each other") }
    }

    func run() async throws {
        let text = self.text || self.deflate && !self.binary
        let payload = Payload.make(size: self.size, text: text)
        let compressed = self.deflate ? try Self.deflate(payload) : nil
        let plan = RunPlan(
            mode: .echo, host: self.target.host, port: self.target.port, path: self.path, payload: payload,
            text: text, compressedPayload: compressed, inFlight: self.inFlight)
        let generator = try Generator(target: self.target)
        let connections = await generator.openAll(self.connections, plan: plan)
        let window = self.timing.window(from: monotonicNanos())
        generator.command(.start(window), connections)
        await sleep(until: window.start)
        let cpuStart = processCPUNanos()
        await sleep(until: window.end)
        let cpuUsed = processCPUNanos() - cpuStart
        let wall = Double(window.end - window.start)
        // Let replies to the last messages arrive before closing (they are not counted).
        try? await Task.sleep(for: .milliseconds(200))
        await generator.closeAll(connections)
        let stats = await generator.collect()
        await generator.shutdown()

        var report = Report(mode: "echo", label: self.target.label, errors: stats.errors)
        report.connections = connections.count
        report.inFlight = self.inFlight
        report.size = self.size
        report.seconds = self.timing.duration
        report.messages = stats.messages
        report.messagesTotal = stats.allMessages
        report.messagesPerSecond = (Double(stats.messages) / (wall / 1e9)).rounded()
        report.megabytesPerSecond = (Double(stats.bytes) / (wall / 1e9) / 1e6 * 100).rounded() / 100
        report.latency(stats.latency)
        report.generatorCPUPercent = (Double(cpuUsed) / wall * 1000).rounded() / 10
        report.generatorThreads = self.target.threads
        report.emit(json: self.target.json)
    }

    /// One message as a permessage-deflate payload: raw deflate, sync-flushed, without the `00 00 FF FF` tail.
    static func deflate(_ payload: [UInt8]) throws -> [UInt8] {
        let compressor = try ZlibCompressor(algorithm: .deflate, configuration: ZlibConfiguration(windowSize: 15))
        var input = ByteBuffer(bytes: payload)
        var output = ByteBuffer()
        output.reserveCapacity(compressor.maxSize(from: input) + 16)
        try compressor.deflate(from: &input, to: &output, flush: .sync)
        var bytes = output.readBytes(length: output.readableBytes) ?? []
        if bytes.suffix(4) == [0, 0, 0xFF, 0xFF] { bytes.removeLast(4) }
        return bytes
    }
}

/// Handshake, one echo, clean close, in `loops` concurrent loops: handshakes per second.
struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Connection churn: handshake, one echo, clean close.")

    @OptionGroup var target: Target
    @OptionGroup var timing: Timing
    @Option(help: "Concurrent connect loops.") var loops = 10
    @Option(help: "Size of the one echoed message.") var size = 64
    @Option(help: "Path of the echo endpoint.") var path = "/echo"

    func run() async throws {
        let plan = RunPlan(
            mode: .connectOnce, host: self.target.host, port: self.target.port, path: self.path,
            payload: Payload.make(size: self.size, text: false), text: false, compressedPayload: nil, inFlight: 1)
        let generator = try Generator(target: self.target)
        let window = self.timing.window(from: monotonicNanos())
        // The loops run as callbacks on the generator's event loops: a Swift task per cycle would add three thread
        // hops (and their futex wake-ups) to every handshake, on the generator's side of the measurement.
        let loops = (0..<self.loops).map { index in
            ConnectLoop(generator: generator, plan: plan, first: index, step: self.loops, window: window,
                        loop: generator.group.next())
        }
        for loop in loops { loop.loop.execute { loop.next() } }
        await sleep(until: window.start)
        let cpuStart = processCPUNanos()
        await sleep(until: window.end)
        let cpuEnd = processCPUNanos()
        var total = ConnectLoop.Tally()
        for loop in loops {
            guard let tally = try? await loop.done.futureResult.get() else { continue }
            total.histogram.add(tally.histogram)
            total.cycles += tally.cycles
            total.errors.merge(tally.errors, uniquingKeysWith: +)
        }
        let stats = await generator.collect()
        await generator.shutdown()
        let wall = Double(window.end - window.start)
        var report = Report(mode: "connect", label: self.target.label, errors: stats.errors.merging(total.errors, uniquingKeysWith: +))
        report.connections = self.loops
        report.size = self.size
        report.seconds = self.timing.duration
        report.messages = total.cycles
        report.handshakesPerSecond = (Double(total.cycles) / (wall / 1e9)).rounded()
        report.latency(total.histogram)
        report.generatorCPUPercent = (Double(cpuEnd - cpuStart) / wall * 1000).rounded() / 10
        report.generatorThreads = self.target.threads
        report.emit(json: self.target.json)
    }
}

/// One connect loop: handshake, one echo, clean close, again, until the window ends; touched only on its event loop.
final class ConnectLoop: @unchecked Sendable {
    struct Tally: Sendable {
        var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
        var cycles = 0
        var errors: [String: Int] = [:]
    }

    let loop: any EventLoop
    /// Completed with the loop's results once its last cycle ended.
    let done: EventLoopPromise<Tally>
    private let generator: Generator
    private let plan: RunPlan
    private let step: Int
    private let window: Window
    private var index: Int
    private var result = Tally()

    init(generator: Generator, plan: RunPlan, first: Int, step: Int, window: Window, loop: any EventLoop) {
        self.generator = generator
        self.plan = plan
        self.index = first
        self.step = step
        self.window = window
        self.loop = loop
        self.done = loop.makePromise()
    }

    /// Starts the next cycle, or completes `done` when the window is over.
    func next() {
        let started = monotonicNanos()
        guard started < self.window.end else { return self.done.succeed(self.result) }
        let attempt = self.generator.start(plan: self.plan, index: self.index, on: self.loop)
        self.index += self.step
        // `opened` completes first (failed when the connect or the upgrade failed); the next cycle starts once the
        // connection is gone.
        attempt.opened.whenComplete { outcome in
            attempt.finished.whenComplete { _ in self.ended(started: started, opened: outcome) }
        }
    }

    private func ended(started: UInt64, opened: Result<Void, any Error>) {
        let done = monotonicNanos()
        switch opened {
        case .success:
            if started >= self.window.start, done < self.window.end {
                self.result.cycles += 1
                _ = self.result.histogram.record(done - started)
            }
        case .failure:
            self.result.errors["cycle failed", default: 0] += 1
        }
        self.next()
    }
}

/// N idle connections that answer pings: the server's resident memory before, with and after them.
struct Hold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Open N idle connections, report the server's resident memory per connection.")

    @OptionGroup var target: Target
    @Option(help: "Connections to hold.") var connections = 10_000
    @Option(help: "The server's process id (to read its resident memory).") var serverPid: Int32
    @Option(help: "Path to connect to.") var path = "/echo"
    @Option(help: "Seconds to hold the connections open (answering pings) after they are all open.") var holdSeconds: Double = 3

    func run() async throws {
        let plan = RunPlan(
            mode: .hold, host: self.target.host, port: self.target.port, path: self.path, payload: [], text: false,
            compressedPayload: nil, inFlight: 1)
        let generator = try Generator(target: self.target)
        let before = residentBytes(pid: self.serverPid) ?? 0
        let connections = await generator.openAll(self.connections, plan: plan)
        // Let the server finish its per-connection work before reading its memory.
        try await Task.sleep(for: .seconds(self.holdSeconds))
        let after = residentBytes(pid: self.serverPid) ?? 0
        await generator.closeAll(connections)
        try await Task.sleep(for: .seconds(1))
        let afterClose = residentBytes(pid: self.serverPid) ?? 0
        let stats = await generator.collect()
        await generator.shutdown()
        var report = Report(mode: "hold", label: self.target.label, errors: stats.errors)
        if connections.count < self.connections {
            report.errorKinds["not opened", default: 0] += self.connections - connections.count
        }
        report.errors = report.errorKinds.values.reduce(0, +)
        report.connections = connections.count
        report.seconds = self.holdSeconds
        report.rssBeforeKib = before / 1024
        report.rssAfterKib = after / 1024
        report.rssAfterCloseKib = afterClose / 1024
        report.bytesPerConnection = (Double(after - before) / Double(max(1, connections.count))).rounded()
        report.generatorThreads = self.target.threads
        report.emit(json: self.target.json)
    }
}
