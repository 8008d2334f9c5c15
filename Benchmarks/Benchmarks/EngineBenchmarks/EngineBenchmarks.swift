import Benchmark
import CompressNIO
import GatewayCore
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket
@_spi(Benchmarks) import WebSocketEngine

#if canImport(Glibc)
import Glibc
#endif

// Microbenchmarks of the engine's hot paths, through its public API. Run with
//   cd Benchmarks && swift package benchmark --target EngineBenchmarks
// Each benchmark does `scaledIterations` operations per sample, so time and allocations are per operation.
//
// The engine's own frame parser (the state machine, as a server parses client frames), frame encoder and masking
// loop are internal; `EngineBenchmarkHooks` (`@_spi(Benchmarks)`) reaches them. SwiftNIO's public unmasking is kept
// as a reference point.

/// Deterministic JSON-like text, as the load generator sends.
func jsonText(_ size: Int) -> String {
    var out = "["
    var id = 1000
    while out.utf8.count < size {
        id += 7
        out += #"{"id":\#(id),"user":"user-\#(id % 97)","active":\#(id % 3 == 0),"score":\#(id % 1000).\#(id % 10),"tags":["t\#(id % 5)","blue"]},"#
    }
    return String(out.utf8.prefix(size))!
}


/// A gateway with connections in group "feed", for registry lookups.
final class RegistryFixture: @unchecked Sendable {
    static let shared = RegistryFixture()
    var gateway: Gateway?
    var sockets: [WebSocket] = []
    var ids: [String] = []

    func start(connections: Int) async throws {
        guard self.gateway == nil else { return }
        struct Idle: GatewayHandler {}
        var logger = Logger(label: "registry-fixture")
        logger.logLevel = .warning
        let gateway = try Gateway(configuration: GatewayConfiguration(
            server: WebSocketServerConfiguration(host: "127.0.0.1", port: 0),
            routes: [try GatewayRoute(path: "/feed", handler: Idle(), groups: ["feed"])],
            logger: logger))
        let address = try await gateway.start()!
        for _ in 0..<connections {
            self.sockets.append(try await WebSocketClient.connect(to: "ws://127.0.0.1:\(address.port!)/feed"))
        }
        while gateway.connectionCount < connections { try await Task.sleep(for: .milliseconds(10)) }
        self.ids = gateway.list().map(\.rawValue)
        self.gateway = gateway
    }

    func stop() async {
        for socket in self.sockets { _ = try? await socket.close() }
        self.sockets = []
        await self.gateway?.shutdown()
        self.gateway = nil
    }
}

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
    // Small operations run a thousand times per sample, large ones once.
    let small = Benchmark.Configuration(metrics: metrics, scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 1_000)
    let large = Benchmark.Configuration(metrics: metrics, scalingFactor: .one, maxDuration: .seconds(2), maxIterations: 10_000)

    // UTF-8 validation (every text message is validated before it reaches the application).
    for size in [64, 16_384] {
        let ascii = Array(jsonText(size).utf8)
        Benchmark("UTF-8 validate \(size) B JSON", configuration: size < 1000 ? small : large) { benchmark in
            for _ in benchmark.scaledIterations {
                var validator = UTF8Validator()
                let ok = ascii.withUnsafeBytes { validator.validate($0) }
                blackHole(ok && validator.isAtBoundary)
            }
        }
    }
    let multibyte = Array(String(repeating: "héllo wörld — ∑ 𝄞 ", count: 16_384 / 28).utf8)
    Benchmark("UTF-8 validate 16 KiB multibyte", configuration: large) { benchmark in
        for _ in benchmark.scaledIterations {
            var validator = UTF8Validator()
            blackHole(multibyte.withUnsafeBytes { validator.validate($0) })
        }
    }

    // Broadcast encoding: the server frame of a broadcast is encoded once per message (FrameEncoder.encode).
    let allocator = ByteBufferAllocator()
    let hundred = String(repeating: "x", count: 100)
    Benchmark("broadcast encode (prepare) 100 B text", configuration: small) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(WebSocketPreparedMessage(.text(hundred), allocator: allocator))
        }
    }
    let sixteenK = ByteBuffer(repeating: 0x5A, count: 16_384)
    Benchmark("frame encode (prepare) 16 KiB binary", configuration: large) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(WebSocketPreparedMessage(.binary(sixteenK), allocator: allocator))
        }
    }

    // The engine's frame parser (header, unmasking in place, UTF-8 for text) over 100 masked client frames, and its
    // server frame encoder.
    for size in [64, 16_384] {
        var frames = ByteBuffer()
        for _ in 0..<100 {
            var frame = EngineBenchmarkHooks.encodeClientFrame(ByteBuffer(repeating: 0x42, count: size))
            frames.writeBuffer(&frame)
        }
        Benchmark("frame parse 100 × \(size) B binary (engine)", configuration: large) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(EngineBenchmarkHooks.parseAsServer(frames))
            }
        }
        let payload = ByteBuffer(repeating: 0x42, count: size)
        Benchmark("frame encode \(size) B binary (engine)", configuration: size < 1000 ? small : large) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(EngineBenchmarkHooks.encodeServerFrame(payload))
            }
        }
        var masked = ByteBuffer(repeating: 0xA5, count: size)
        Benchmark("unmask \(size) B (engine)", configuration: size < 1000 ? small : large) { benchmark in
            for _ in benchmark.scaledIterations {
                EngineBenchmarkHooks.unmask(&masked)
                blackHole(masked.readableBytes)
            }
        }
    }

    // Unmasking (reference: SwiftNIO's public implementation).
    for size in [64, 16_384] {
        var buffer = ByteBuffer(repeating: 0xA5, count: size)
        let key = WebSocketMaskingKey([0x37, 0xFA, 0x21, 0x3D])!
        Benchmark("unmask \(size) B (NIO reference)", configuration: size < 1000 ? small : large) { benchmark in
            for _ in benchmark.scaledIterations {
                buffer.webSocketUnmask(key)
                blackHole(buffer.readableBytes)
            }
        }
    }

    // permessage-deflate, configured as the engine configures zlib (raw deflate, 15-bit window, level 6, sync flush).
    let json = ByteBuffer(string: jsonText(4096))
    Benchmark("deflate 4 KiB JSON (zlib as the engine uses it)", configuration: large) { benchmark in
        let compressor = try ZlibCompressor(algorithm: .deflate, configuration: ZlibConfiguration(windowSize: 15, compressionLevel: 6))
        var output = ByteBuffer()
        output.reserveCapacity(8192)
        for _ in benchmark.scaledIterations {
            var input = json
            output.clear()
            try compressor.deflate(from: &input, to: &output, flush: .sync)
            blackHole(output.readableBytes)
        }
    }
    let compressed: ByteBuffer = {
        let compressor = try! ZlibCompressor(algorithm: .deflate, configuration: ZlibConfiguration(windowSize: 15))
        var input = json
        var output = ByteBuffer()
        output.reserveCapacity(8192)
        try! compressor.deflate(from: &input, to: &output, flush: .sync)
        return output
    }()
    Benchmark("inflate 4 KiB JSON (zlib as the engine uses it)", configuration: large) { benchmark in
        let decompressor = try ZlibDecompressor(algorithm: .deflate, windowSize: 15)
        var output = ByteBuffer()
        output.reserveCapacity(8192)
        for _ in benchmark.scaledIterations {
            var input = compressed
            output.clear()
            try decompressor.inflate(from: &input, to: &output)
            try decompressor.reset()
            blackHole(output.readableBytes)
        }
    }

    // Registry lookups on a live gateway with 500 connections (in-process, loopback). The gateway is started, not
    // run: its connections are served from the moment it listens.
    let fixture = RegistryFixture.shared
    Benchmark(
        "registry lookup info(id) of 500", configuration: small,
        closure: { benchmark in
            let gateway = fixture.gateway!
            let ids = fixture.ids
            for index in benchmark.scaledIterations {
                blackHole(try? gateway.info(ids[index % ids.count]))
            }
        },
        setup: { try await fixture.start(connections: 500) }
    )
    Benchmark(
        "registry list group of 500", configuration: large,
        closure: { benchmark in
            let gateway = fixture.gateway!
            for _ in benchmark.scaledIterations {
                blackHole(gateway.list(ConnectionFilter(groups: ["feed"])))
            }
        },
        setup: { try await fixture.start(connections: 500) },
        teardown: { await fixture.stop() }
    )
}
