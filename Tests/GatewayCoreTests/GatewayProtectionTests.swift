import GatewayCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import NIOHTTP1
import Testing
import WebSocketEngine
import GatewayTestKit
import WebSocketTestKit

/// Keeps connections that their client closed (1000) registered until released, so a test can address closed
/// connections.
struct LingeringHandler: GatewayHandler {
    let release: EventLoopPromise<Void>
    let closed: Mailbox<SocketID>

    func serve(_ context: GatewayContext, events: GatewayEvents) async {
        for await event in events {
            if case .close(let code, _) = event.kind, code == 1000 {
                self.closed.put(context.connection.id)
                try? await self.release.futureResult.get()
            }
        }
    }
}

@Suite("Gateway: broadcast failures and protection")
struct GatewayProtectionTests {
    @Test func broadcastToAThousandNamesExactlyTheClosedAndSlowConnections() async throws {
        let release = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        let closed = Mailbox<SocketID>()
        var connection = WebSocketConfiguration()
        connection.outboundQueueSize = 16 * 1024
        var configuration = GatewayConfiguration(
            routes: [try GatewayRoute(path: "/feed", handler: LingeringHandler(release: release, closed: closed), groups: ["feed"], connection: connection)])
        configuration.slowConsumer = .drop
        try await withGateway(configuration) { gateway, port in
            // Clients that stop reading stop at once (one held event), so that "full" stays full under load.
            var client = WebSocketClientConfiguration()
            client.connection.inboundBufferedEvents = 1
            var clients: [WebSocket] = []
            for _ in 0..<1000 {
                clients.append(try await connect(port, "/feed", client))
            }
            #expect(gateway.list(ConnectionFilter(groups: ["feed"])).count == 1000)
            // Ten clients leave (their connections stay registered, closed) ...
            var expectedClosed = Set<SocketID>()
            for client in clients[0..<10] {
                try await client.close()
                expectedClosed.insert(await closed.take()!)
            }
            // ... and ten stop reading: fill their queues until the gateway reports them slow.
            let byPort = Dictionary(uniqueKeysWithValues: try gateway.list().map { id in (try gateway.info(id.rawValue).remoteAddress!, id) })
            var expectedSlow = Set<SocketID>()
            let chunk = ByteBuffer(repeating: 1, count: 64 * 1024)
            for client in clients[10..<20] {
                let local = client.localAddress!
                let id = byPort["\(local.ipAddress!):\(local.port!)"]!
                expectedSlow.insert(id)
                // The kernel's socket buffers keep draining the gateway's queue for a while after the first
                // refusal; the connection is full once refusals persist (20 in a row, 10 ms apart).
                var full = false
                var refusals = 0
                for _ in 0..<10_000 where !full {
                    do throws(GatewayError) {
                        try await gateway.send(id.rawValue, .binary(chunk))
                        refusals = 0
                    } catch {
                        guard error.kind == .slowConsumer else {
                            Issue.record("unexpected \(error)")
                            break
                        }
                        refusals += 1
                        full = refusals == 20
                        try await Task.sleep(for: .milliseconds(10))
                    }
                }
                #expect(full)
            }
            let result = await gateway.broadcast(.text(String(repeating: "b", count: 100)), to: ConnectionFilter(groups: ["feed"]))
            #expect(result.delivered == 980)
            #expect(Set(result.failures.map(\.socketID)) == expectedClosed.union(expectedSlow))
            #expect(result.failures.filter { expectedClosed.contains($0.socketID) }.allSatisfy { $0.error == "closed meanwhile" && $0.reason == .closed })
            #expect(result.failures.filter { expectedSlow.contains($0.socketID) }.allSatisfy { $0.error == "slow consumer (outbound queue full)" && $0.reason == .slowConsumer })
            #expect(result.failures.allSatisfy { $0.socketType == .inbound && $0.uri.hasSuffix("/feed") })
            for client in clients[20...] {
                #expect(try await client.receive() == .text(String(repeating: "b", count: 100)))
            }
            release.succeed()
        }
    }

    @Test func aRoutesSlowConsumerPolicyOverridesTheGateways() async throws {
        var connection = WebSocketConfiguration()
        connection.outboundQueueSize = 16 * 1024
        let configuration = GatewayConfiguration(
            routes: [try GatewayRoute(path: "/s", handler: EchoHandler(), connection: connection, slowConsumer: .drop)])
        #expect(configuration.slowConsumer == .close)
        try await withGateway(configuration) { gateway, port in
            let client = try await connect(port, "/s")
            let id = gateway.list()[0].rawValue
            let failure = await firstRefusal(gateway, id)
            // Dropped, not closed: the connection stays open and takes messages again once its client reads.
            #expect(failure?.kind == .slowConsumer)
            #expect(try gateway.info(id).state == "open")
            try await client.close()
        }
    }

    @Test func slowConsumersAreClosedWith1008ByDefault() async throws {
        var connection = WebSocketConfiguration()
        connection.outboundQueueSize = 16 * 1024
        let configuration = GatewayConfiguration(routes: [try GatewayRoute(path: "/s", handler: EchoHandler(), connection: connection)])
        try await withGateway(configuration) { gateway, port in
            let client = try await connect(port, "/s")
            let id = gateway.list()[0].rawValue
            let failure = await firstRefusal(gateway, id)
            #expect(failure?.kind == .slowConsumer)
            while case .binary? = try await client.receive() {}
            #expect(await client.closeInfo == WebSocketCloseInfo(code: .policyViolation, reason: "slow consumer", initiatedLocally: false))
        }
    }

    @Test func rateLimitDropsWithAnErrorEventOnAManualClock() async throws {
        let clock = ManualClock()
        let events = Mailbox<GatewayEvent.Kind>()
        var configuration = GatewayConfiguration(routes: [
            try GatewayRoute(path: "/rl", handler: RecordingHandler(events: events), rateLimit: RateLimit(messagesPerSecond: 1, burst: 2, onExceed: .drop))
        ])
        configuration.clock = clock
        try await withGateway(configuration) { _, port in
            let client = try await connect(port, "/rl")
            #expect(await events.take() == .open)
            for index in 1...3 { try await client.send(text: "m\(index)") }
            #expect(await events.take() == .text("m1"))
            #expect(await events.take() == .text("m2"))
            #expect(await events.take() == .error("rate limit exceeded: message dropped"))
            clock.advance(by: .seconds(1))
            try await client.send(text: "m4")
            #expect(await events.take() == .text("m4"))
            #expect(try await client.receive() == .text("m1"))
            #expect(try await client.receive() == .text("m2"))
            #expect(try await client.receive() == .text("m4"))
            try await client.close()
        }
    }

    @Test func rateLimitClosesWith1008() async throws {
        let configuration = GatewayConfiguration(
            routes: [try GatewayRoute(path: "/rl", handler: EchoHandler())],
            rateLimit: RateLimit(messagesPerSecond: 0.001, burst: 1, onExceed: .close), clock: ManualClock())
        try await withGateway(configuration) { _, port in
            let client = try await connect(port, "/rl")
            try await client.send(text: "one")
            try await client.send(text: "two")
            #expect(try await client.receive() == .text("one"))
            #expect(try await client.receive() == nil)
            #expect(await client.closeInfo == WebSocketCloseInfo(code: .policyViolation, reason: "rate limit exceeded", initiatedLocally: false))
        }
    }

    @Test func aPingFloodTakesFromTheRateLimitToo() async throws {
        let configuration = GatewayConfiguration(
            routes: [try GatewayRoute(path: "/rl", handler: EchoHandler())],
            rateLimit: RateLimit(messagesPerSecond: 0.001, burst: 3, onExceed: .close), clock: ManualClock())
        try await withGateway(configuration) { _, port in
            let client = try await connect(port, "/rl")
            for _ in 0..<10 { try? await client.ping(ByteBuffer(string: "flood")) }
            // The pongs of the admitted pings come back as events, then the close.
            while let message = try await client.receive() { Issue.record("unexpected \(message)") }
            #expect(await client.closeInfo == WebSocketCloseInfo(code: .policyViolation, reason: "rate limit exceeded", initiatedLocally: false))
        }
    }

    @Test func idleConnectionsAreToldAndClosedWith1001() async throws {
        let events = Mailbox<GatewayEvent.Kind>()
        var connection = WebSocketConfiguration()
        connection.idleTimeout = .milliseconds(100)
        let configuration = GatewayConfiguration(routes: [try GatewayRoute(path: "/idle", handler: RecordingHandler(events: events), connection: connection)])
        try await withGateway(configuration) { _, port in
            let client = try await connect(port, "/idle")
            #expect(await events.take() == .open)
            #expect(await events.take() == .idleTimeout)
            #expect(await client.closeInfo == WebSocketCloseInfo(code: .goingAway, reason: "idle timeout", initiatedLocally: false))
        }
    }

    @Test func refusesConnectionsOverTheLimitsAndForeignOrigins() async throws {
        let configuration = GatewayConfiguration(
            routes: [
                try GatewayRoute(path: "/one", handler: EchoHandler(), maxConnections: 1),
                try GatewayRoute(path: "/app", handler: EchoHandler(), allowedOrigins: ["https://app.example.com"]),
            ],
            maxConnections: 2)
        try await withGateway(configuration) { gateway, port in
            let first = try await connect(port, "/one")
            do {
                _ = try await connect(port, "/one")
                Issue.record("expected 503")
            } catch let error as WebSocketClientError {
                #expect(error.status == .serviceUnavailable && error.responseBody.map { String(buffer: $0) } == "route /one at capacity (1 connections)\n")
            }
            do {
                _ = try await connect(port, "/app", .init(headers: ["Origin": "https://evil.example.com"]))
                Issue.record("expected 403")
            } catch let error as WebSocketClientError {
                #expect(error.status == .forbidden && error.responseBody.map { String(buffer: $0) } == "origin https://evil.example.com is not allowed\n")
            }
            let second = try await connect(port, "/app", .init(headers: ["Origin": "https://app.example.com"]))
            do {
                _ = try await connect(port, "/app")
                Issue.record("expected 503")
            } catch let error as WebSocketClientError {
                #expect(error.status == .serviceUnavailable && error.responseBody.map { String(buffer: $0) } == "gateway at capacity (2 connections)\n")
            }
            try await first.close()
            try await second.close()
        }
    }

    @Test func aServiceGroupsGracefulShutdownClosesEveryConnectionWith1001() async throws {
        let gateway = try Gateway(configuration: GatewayConfiguration(
            server: .init(host: "127.0.0.1", port: 0), routes: [try GatewayRoute(path: "/x", handler: EchoHandler())]))
        let port = try await gateway.start()!.port!
        let group = ServiceGroup(services: [gateway], gracefulShutdownSignals: [], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let client = try await connect(port, "/x")
            try await client.send(text: "still here")
            #expect(try await client.receive() == .text("still here"))
            await group.triggerGracefulShutdown()
            #expect(try await client.receive() == nil)
            #expect(await client.closeInfo == WebSocketCloseInfo(code: .goingAway, reason: "gateway shutting down", initiatedLocally: false))
            try await tasks.waitForAll()
        }
    }

    @Test func gracefulShutdownClosesEveryConnectionWith1001() async throws {
        let configuration = GatewayConfiguration(routes: [try GatewayRoute(path: "/x", handler: EchoHandler())])
        var clients: [WebSocket] = []
        try await withGateway(configuration) { _, port in
            for _ in 0..<5 { clients.append(try await connect(port, "/x")) }
        }
        for client in clients {
            #expect(await client.closeInfo == WebSocketCloseInfo(code: .goingAway, reason: "gateway shutting down", initiatedLocally: false))
        }
    }
}
