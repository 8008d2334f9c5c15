import GatewayCore
import Metrics
import MetricsTestKit
import NIOCore
import NIOPosix
import Testing
import GatewayTestKit
import WebSocketEngine
import WebSocketTestKit

/// The metrics backend of this test process (swift-metrics is bootstrapped once per process).
let testMetrics: TestMetrics = {
    let metrics = TestMetrics()
    MetricsSystem.bootstrap(metrics)
    return metrics
}()

/// `wsgate_broadcast_failures_total{reason}` as counted so far in this process.
func broadcastFailures(_ reason: BroadcastFailure.Reason) -> Int64 {
    testMetrics.counters(label: "wsgate_broadcast_failures_total", dimensions: [("reason", reason.rawValue)]).reduce(0) { $0 + $1.totalValue }
}

@Suite("Gateway: broadcast failures carry their reason, and metrics count by it")
struct BroadcastFailureTests {
    private func failures(_ reason: BroadcastFailure.Reason) -> Int64 { broadcastFailures(reason) }

    @Test func eachReasonIsReportedAndCounted() async throws {
        _ = testMetrics
        let release = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        let closed = Mailbox<SocketID>()
        var small = WebSocketConfiguration()
        small.maxMessageSize = 8
        var slow = WebSocketConfiguration()
        slow.outboundQueueSize = 16 * 1024
        var configuration = GatewayConfiguration(routes: [
            try GatewayRoute(path: "/small", handler: EchoHandler(), groups: ["all"], connection: small),
            try GatewayRoute(path: "/json", handler: EchoHandler(), groups: ["all"], codec: MessageCodec(format: .json)),
            try GatewayRoute(path: "/linger", handler: LingeringHandler(release: release, closed: closed), groups: ["all"]),
            try GatewayRoute(path: "/slow", handler: EchoHandler(), groups: ["all"], connection: slow),
            try GatewayRoute(path: "/fine", handler: EchoHandler(), groups: ["all"]),
        ])
        configuration.slowConsumer = .drop
        let before = Dictionary(uniqueKeysWithValues: BroadcastFailure.Reason.allCases.map { ($0, self.failures($0)) })
        try await withGateway(configuration) { gateway, port in
            // The lingering connection may end when the test does (the gateway's shutdown waits for it).
            defer { release.succeed() }
            var clients: [String: WebSocket] = [:]
            for path in ["/small", "/json", "/linger", "/slow", "/fine"] { clients[path] = try await connect(port, path) }
            try await clients["/linger"]!.close()
            let lingering = try await within(5, "the closed connection") { await closed.take()! }
            let slowID = gateway.list(ConnectionFilter(path: "/slow"))[0].rawValue
            var refusals = 0
            for _ in 0..<10_000 where refusals < 20 {
                do throws(GatewayError) {
                    try await gateway.send(slowID, .binary(ByteBuffer(repeating: 1, count: 64 * 1024)))
                    refusals = 0
                } catch {
                    #expect(error.kind == .slowConsumer)
                    refusals += 1
                    try await Task.sleep(for: .milliseconds(10))
                }
            }

            let result = await gateway.broadcast(.text("{not json"), to: ConnectionFilter(groups: ["all"]))
            let reasons = Dictionary(uniqueKeysWithValues: result.failures.map { ($0.uri.split(separator: "/").last.map(String.init) ?? "", $0.reason) })
            #expect(reasons == ["small": .tooLarge, "json": .codec, "linger": .closed, "slow": .slowConsumer])
            #expect(result.delivered == 1 && result.failures.first { $0.reason == .closed }?.socketID == lingering)
            #expect(try await clients["/fine"]!.receive() == .text("{not json"))
            for reason in [BroadcastFailure.Reason.tooLarge, .codec, .closed, .slowConsumer] {
                #expect(self.failures(reason) >= before[reason]! + 1, "\(reason)")
            }
        }
    }
}
