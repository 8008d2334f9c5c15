import GatewayCore
import NIOCore
import NIOHTTP1
import Testing
import GatewayTestKit
import WebSocketEngine
import WebSocketTestKit

@Suite("Outbound sockets: registry membership, reconnection and queueing over loopback")
struct OutboundTests {
    static func echoRoute() throws -> GatewayRoute { try GatewayRoute(path: "/echo", handler: EchoHandler()) }

    @Test func outboundSocketIsARegistryMemberThatSendsReceivesAndCloses() async throws {
        let seen = Mailbox<GatewayUpgradeRequest>()
        let upstream = try await Upstream.start(routes: [
            try GatewayRoute(path: "/v1/devices/{device}", handler: EchoHandler(), subprotocols: ["feed.v1"], upgradeHook: { request in
                seen.put(request)
                return .accept(GatewayAcceptance())
            })
        ])
        var configuration = GatewayConfiguration()
        configuration.outbound = OutboundDefaults(
            baseURL: "ws://127.0.0.1:\(upstream.port)/v1", headers: ["X-Gateway": "wsgate", "X-Tenant": "default"],
            query: ["region": "eu"])
        try await withGateway(configuration) { gateway, _ in
            let events = Mailbox<GatewayEvent.Kind>()
            let id = try await gateway.openOutbound(OutboundSocket(
                socketID: "device-7", url: "/devices/{device}", headers: ["X-Tenant": "acme"], query: ["v": "2"],
                pathParameters: ["device": "7 a"], groups: ["upstreams"], attributes: ["kind": "device"],
                subprotocols: ["feed.v1"], handler: ListeningHandler(events: events)))
            #expect(id.rawValue == "device-7")
            let request = try #require(await seen.take())
            #expect(request.path == "/v1/devices/7%20a" || request.path == "/v1/devices/7 a")
            #expect(request.queryParameters == ["region": "eu", "v": "2"])
            #expect(request.headers["x-tenant"] == ["acme"] && request.headers["x-gateway"] == ["wsgate"])
            #expect(try await events.next("open") { $0 == .open }.1 == [.connecting(attempt: 1)])

            let info = try gateway.info("device-7")
            #expect(info.socketType == .outbound && info.state == "open" && info.subprotocol == "feed.v1")
            #expect(info.groups == ["upstreams"] && info.attributes == ["kind": "device"])
            #expect(gateway.list(ConnectionFilter(socketType: .outbound)) == [id])

            try await gateway.send("device-7", .text("hello"))
            #expect(try await events.next("echo") { if case .text = $0 { true } else { false } }.0 == .text("hello"))
            let result = await gateway.broadcast(.text("to all"), to: ConnectionFilter(groups: ["upstreams"]))
            #expect(result.delivered == 1 && result.failures.isEmpty)
            #expect(try await events.next("broadcast echo") { if case .text = $0 { true } else { false } }.0 == .text("to all"))

            await #expect(throws: GatewayError.socketIDInUse("device-7")) {
                try await gateway.openOutbound(OutboundSocket(socketID: "device-7", url: "ws://127.0.0.1:\(upstream.port)/v1/devices/8"))
            }
            await #expect(throws: GatewayError.invalidSocketID("bad id!")) {
                try await gateway.openOutbound(OutboundSocket(socketID: "bad id!", url: "/devices/8"))
            }
            await #expect(throws: GatewayError.self) {
                try await gateway.openOutbound(OutboundSocket(url: "/devices/{device}"))
            }

            try await gateway.close("device-7", code: .normalClosure, reason: "done")
            let (closed, _) = try await events.next("close") { if case .close = $0 { true } else { false } }
            // The close event carries the gateway's own close (the peer's echo has no reason).
            #expect(closed == .close(code: 1000, reason: "done"), "\(closed)")
            try await within(5, "unregistering") { while !gateway.list(ConnectionFilter(socketType: .outbound)).isEmpty { try await Task.sleep(for: .milliseconds(10)) } }
        }
        try await upstream.stop()
    }

    @Test func failedFirstConnectWithoutRetriesIsAnErrorAndTheCapHolds() async throws {
        let upstream = try await Upstream.start(routes: [try Self.echoRoute()])
        let port = upstream.port
        try await upstream.stop()
        var configuration = GatewayConfiguration()
        configuration.outbound.maxSockets = 1
        try await withGateway(configuration) { gateway, _ in
            do {
                try await gateway.openOutbound(OutboundSocket(url: "ws://127.0.0.1:\(port)/echo"))
                Issue.record("expected connect_failed")
            } catch let error as GatewayError {
                #expect(error.kind == .connectFailed && "\(error)".contains("ws://127.0.0.1:\(port)/echo"))
            }
            #expect(gateway.list().isEmpty)
            // A socket that retries is registered while it keeps trying, and takes the only outbound slot.
            let id = try await gateway.openOutbound(OutboundSocket(url: "ws://127.0.0.1:\(port)/echo", reconnect: .forever(interval: .milliseconds(50))))
            #expect(try gateway.info(id.rawValue).state == "connecting")
            do {
                try await gateway.openOutbound(OutboundSocket(url: "ws://127.0.0.1:\(port)/echo", reconnect: .forever(interval: .milliseconds(50))))
                Issue.record("expected too_many_outbound")
            } catch let error as GatewayError {
                #expect(error.kind == .tooManyOutbound)
            }
            try await gateway.close(id.rawValue)
        }
    }

    @Test func reconnectsAfterTheServerComesBackKeepingIdentityAndSendingQueuedMessagesInOrder() async throws {
        let first = try await Upstream.start(routes: [try Self.echoRoute()])
        let port = first.port
        try await withGateway(GatewayConfiguration()) { gateway, _ in
            let events = Mailbox<GatewayEvent.Kind>()
            let id = try await gateway.openOutbound(OutboundSocket(
                socketID: "upstream", url: "ws://127.0.0.1:\(port)/echo", groups: ["feeds"], attributes: ["a": "1"],
                reconnect: .fixed(interval: .milliseconds(100), count: 100), handler: ListeningHandler(events: events)))
            _ = try await events.next("open") { $0 == .open }
            try gateway.connection("upstream").setAttribute("b", "2")

            try await first.stop()
            let (lost, _) = try await events.next("disconnected") { if case .disconnected = $0 { true } else { false } }
            #expect(lost == .disconnected(code: 1001, reason: "gateway shutting down"))
            #expect(try gateway.info("upstream").state == "reconnecting")
            #expect(try !gateway.connection("upstream").isOpen)

            // Sent while down: queued in order (broadcasts do not wait; a send waits for its delivery).
            for n in 1...3 {
                let result = await gateway.broadcast(.text("queued \(n)"), to: ConnectionFilter(groups: ["feeds"]))
                #expect(result.delivered == 1 && result.failures.isEmpty)
            }
            let waiting = Task { try await gateway.send("upstream", .text("queued 4")) }

            let second = try await Upstream.start(port: port, routes: [try Self.echoRoute()])
            let (back, before) = try await events.next("reconnected", seconds: 15) { if case .reconnected = $0 { true } else { false } }
            guard case .reconnected(let attempt) = back else { return }
            #expect(before.first == .connecting(attempt: 2) && attempt >= 2)
            #expect(before.allSatisfy { if case .connecting = $0 { true } else if case .connectFailed = $0 { true } else { false } })
            try await waiting.value
            var echoed: [String] = []
            while echoed.count < 4 {
                let (event, _) = try await events.next("queued echo") { if case .text = $0 { true } else { false } }
                if case .text(let text) = event { echoed.append(text) }
            }
            #expect(echoed == ["queued 1", "queued 2", "queued 3", "queued 4"])
            let info = try gateway.info(id.rawValue)
            #expect(info.state == "open" && info.groups == ["feeds"] && info.attributes == ["a": "1", "b": "2"])
            #expect(info.messagesOut == 4)
            try await gateway.close("upstream")
            try await second.stop()
        }
    }

    @Test func fullQueueFailsNewMessagesAndGivingUpFailsTheQueuedOnes() async throws {
        _ = testMetrics
        let upstream = try await Upstream.start(routes: [try Self.echoRoute()])
        let port = upstream.port
        try await withGateway(GatewayConfiguration()) { gateway, _ in
            let events = Mailbox<GatewayEvent.Kind>()
            _ = try await gateway.openOutbound(OutboundSocket(
                socketID: "flaky", url: "ws://127.0.0.1:\(port)/echo", groups: ["g"],
                reconnect: .exponential(initialInterval: .seconds(1), growth: 2, maxInterval: .seconds(2), maxRetries: 3, jitter: 0.2),
                queue: ReconnectQueuePolicy(size: 2, whenFull: .rejectNew), handler: ListeningHandler(events: events)))
            _ = try await events.next("open") { $0 == .open }
            try await upstream.stop()
            _ = try await events.next("disconnected") { if case .disconnected = $0 { true } else { false } }
            let queued = Task { try await gateway.send("flaky", .text("one")) }
            let flaky = try gateway.connection("flaky")
            try await within(5, "the first message to be queued") {
                while flaky.queuedMessages < 1 { try await Task.sleep(for: .milliseconds(5)) }
            }
            let second = await gateway.broadcast(.text("two"), to: ConnectionFilter(groups: ["g"]))
            #expect(second.delivered == 1 && second.failures.isEmpty && flaky.queuedMessages == 2)
            let queueFullBefore = broadcastFailures(.queueFull)
            let third = await gateway.broadcast(.text("three"), to: ConnectionFilter(groups: ["g"]))
            #expect(broadcastFailures(.queueFull) >= queueFullBefore + 1)
            #expect(third.delivered == 0 && third.failures.first?.error.contains("queue is full (2 messages)") == true)
            #expect(third.failures.first?.reason == .queueFull)
            await #expect(throws: GatewayError.reconnectQueueFull("flaky", limit: 2)) { try await gateway.send("flaky", .text("four")) }

            let (gaveUp, skipped) = try await events.next("gave up", seconds: 15) { if case .gaveUp = $0 { true } else { false } }
            #expect(gaveUp == .gaveUp(attempts: 3, reason: (skipped.last.flatMap { if case .connectFailed(_, let r) = $0 { r } else { nil } }) ?? ""))
            #expect(skipped.filter { if case .connecting = $0 { true } else { false } }.count == 3)
            let (close, _) = try await events.next("close") { if case .close = $0 { true } else { false } }
            #expect(close == .close(code: 1001, reason: "gave up reconnecting after 3 attempts"))
            await #expect(throws: GatewayError.reconnectGaveUp("flaky", attempts: 3)) { try await queued.value }
            try await within(5, "unregistering") { while !gateway.list().isEmpty { try await Task.sleep(for: .milliseconds(10)) } }
        }
    }

    @Test func socketThatStartsDownConnectsWhenTheServerAppears() async throws {
        let probe = try await Upstream.start(routes: [try Self.echoRoute()])
        let port = probe.port
        try await probe.stop()
        try await withGateway(GatewayConfiguration()) { gateway, _ in
            let events = Mailbox<GatewayEvent.Kind>()
            let id = try await gateway.openOutbound(OutboundSocket(
                url: "ws://127.0.0.1:\(port)/echo", reconnect: .forever(interval: .milliseconds(100)),
                queue: ReconnectQueuePolicy(size: 0), handler: ListeningHandler(events: events)))
            await #expect(throws: GatewayError.notConnected(id.rawValue)) { try await gateway.send(id.rawValue, .text("early")) }
            let upstream = try await Upstream.start(port: port, routes: [try Self.echoRoute()])
            let (open, before) = try await events.next("open", seconds: 15) { $0 == .open }
            #expect(open == .open && before.first == .connecting(attempt: 1))
            #expect(before.contains { if case .connectFailed(attempt: 1, _) = $0 { true } else { false } })
            try await gateway.send(id.rawValue, .text("now"))
            #expect(try await events.next("echo") { if case .text = $0 { true } else { false } }.0 == .text("now"))
            try await gateway.close(id.rawValue)
            try await upstream.stop()
        }
    }

    @Test func reconnectDelaysFollowTheStrategy() {
        #expect(ReconnectStrategy.none.delay(beforeRetry: 1) == nil)
        let fixed = ReconnectStrategy.fixed(interval: .seconds(2), count: 3)
        #expect((1...3).map { fixed.delay(beforeRetry: $0) } == [.seconds(2), .seconds(2), .seconds(2)])
        #expect(fixed.delay(beforeRetry: 4) == nil)
        #expect(ReconnectStrategy.forever(interval: .seconds(1)).delay(beforeRetry: 10_000) == .seconds(1))
        let exponential = ReconnectStrategy.exponential(
            initialInterval: .milliseconds(100), growth: 2, maxInterval: .seconds(1), maxRetries: 6, jitter: 0)
        #expect((1...6).map { exponential.delay(beforeRetry: $0) } == [100, 200, 400, 800, 1000, 1000].map { .milliseconds($0) })
        #expect(exponential.delay(beforeRetry: 7) == nil)
        let jittered = ReconnectStrategy.exponential(
            initialInterval: .milliseconds(100), growth: 2, maxInterval: .seconds(1), maxRetries: 6, jitter: 0.5)
        #expect(jittered.delay(beforeRetry: 2, random: { 0 }) == .milliseconds(100))
        #expect(jittered.delay(beforeRetry: 2, random: { 0.5 }) == .milliseconds(200))
        #expect(jittered.delay(beforeRetry: 2, random: { 0.999 })! > .milliseconds(299))
    }

    @Test func handshakeTimeoutAndIdleTimeoutApplyToOutboundSockets() async throws {
        // A server that accepts the connection and never answers the upgrade request.
        let silent = try await CannedResponseServer.start(closeAfterResponse: false) { _ in "" }
        let upstream = try await Upstream.start(routes: [try Self.echoRoute()])
        try await withGateway(GatewayConfiguration()) { gateway, _ in
            var client = WebSocketClientConfiguration(handshakeTimeout: .milliseconds(200))
            do {
                try await gateway.openOutbound(OutboundSocket(url: "ws://127.0.0.1:\(silent.port)/never", client: client))
                Issue.record("expected connect_failed")
            } catch let error as GatewayError {
                #expect(error.kind == .connectFailed && "\(error)".contains("timed out"), "\(error)")
            }
            client.connection.idleTimeout = .milliseconds(150)
            let events = Mailbox<GatewayEvent.Kind>()
            try await gateway.openOutbound(OutboundSocket(
                socketID: "quiet", url: "ws://127.0.0.1:\(upstream.port)/echo", reconnect: .forever(interval: .milliseconds(50)),
                handler: ListeningHandler(events: events), client: client, idleAction: .close))
            _ = try await events.next("idle") { $0 == .idleTimeout }
            // Closed by the idle action: a deliberate close, so no reconnection.
            let (closed, skipped) = try await events.next("close") { if case .close = $0 { true } else { false } }
            // The close event carries the upstream's answer to our 1001.
            #expect({ if case .close(code: 1001, _) = closed { true } else { false } }(), "\(closed)")
            let reconnecting = skipped.contains {
                switch $0 {
                case .disconnected, .connecting, .reconnected: true
                default: false
                }
            }
            #expect(!reconnecting, "\(skipped)")
        }
        try await silent.close()
        try await upstream.stop()
    }
}
