import GatewayCore
import NIOCore
import Testing
import GatewayTestKit
import WebSocketEngine
import WebSocketTestKit

@Suite("Flows: bridge and forward")
struct FlowTests {
    @Test func bridgeSendsRequestsUpstreamAndRepliesBackToEachSender() async throws {
        let upstream = try await Upstream.start(routes: [
            try GatewayRoute(path: "/rpc", handler: EchoHandler()),
            try GatewayRoute(path: "/silent", handler: IgnoringHandler()),
        ])
        let bridge = BridgeFlow(outbound: "rpc", timeout: .seconds(5))
        let silent = BridgeFlow(outbound: "silent", timeout: .milliseconds(200))
        var configuration = GatewayConfiguration(routes: [
            try GatewayRoute(path: "/api", handler: bridge.requests),
            try GatewayRoute(path: "/slow", handler: silent.requests),
        ])
        configuration.services = [bridge, silent]
        try await withGateway(configuration) { gateway, port in
            try await gateway.openOutbound(OutboundSocket(socketID: "rpc", url: "ws://127.0.0.1:\(upstream.port)/rpc", handler: bridge.replies))
            try await gateway.openOutbound(OutboundSocket(socketID: "silent", url: "ws://127.0.0.1:\(upstream.port)/silent", handler: silent.replies))
            let alice = try await connect(port, "/api")
            let bob = try await connect(port, "/api")
            for n in 0..<20 {
                try await alice.send(text: "alice \(n)")
                try await bob.send(text: "bob \(n)")
            }
            for n in 0..<20 {
                #expect(try await alice.receive() == .text("alice \(n)"))
                #expect(try await bob.receive() == .text("bob \(n)"))
            }
            #expect(bridge.pendingCount == 0)
            let slow = try await connect(port, "/slow")
            try await slow.send(text: "anyone?")
            guard case .text(let reply) = try await slow.receive() else { Issue.record("expected a text reply"); return }
            #expect(reply.contains(#""error":"timeout""#) && reply.contains(#""upstream":"silent""#))
            try await alice.close()
            try await bob.close()
            try await slow.close()
        }
        try await upstream.stop()
    }

    @Test func bridgeMatchesRepliesByJSONFieldAndReportsAMissingUpstream() async throws {
        let upstream = try await Upstream.start(routes: [try GatewayRoute(path: "/rpc", handler: EchoHandler())])
        let bridge = BridgeFlow(outbound: "rpc", timeout: .seconds(5), correlation: .jsonField("id"))
        var configuration = GatewayConfiguration(routes: [try GatewayRoute(path: "/api", handler: bridge.requests)])
        configuration.services = [bridge]
        try await withGateway(configuration) { gateway, port in
            let client = try await connect(port, "/api")
            try await client.send(text: #"{"id":1}"#)
            guard case .text(let missing) = try await client.receive() else { return }
            #expect(missing.contains(#""error":"upstream_unavailable""#) && missing.contains("no such socket: rpc"))
            try await gateway.openOutbound(OutboundSocket(socketID: "rpc", url: "ws://127.0.0.1:\(upstream.port)/rpc", handler: bridge.replies))
            try await client.send(text: #"{"id":7,"q":"a"}"#)
            #expect(try await client.receive() == .text(#"{"id":7,"q":"a"}"#))
            try await client.send(text: #"{"q":"no id"}"#)
            guard case .text(let bad) = try await client.receive() else { return }
            #expect(bad.contains(#""error":"bad_request""#))
            try await client.close()
        }
        try await upstream.stop()
    }

    @Test func forwardFansAnUpstreamFeedOutToAGroup() async throws {
        let upstream = try await Upstream.start(routes: [try GatewayRoute(path: "/feed", handler: IgnoringHandler(), groups: ["feed"])])
        let configuration = GatewayConfiguration(routes: [
            try GatewayRoute(path: "/live", handler: IgnoringHandler(), groups: ["live"]),
            try GatewayRoute(path: "/other", handler: IgnoringHandler()),
        ])
        try await withGateway(configuration) { gateway, port in
            try await gateway.openOutbound(OutboundSocket(
                socketID: "feed", url: "ws://127.0.0.1:\(upstream.port)/feed", groups: ["live"], handler: ForwardHandler(group: "live")))
            let watchers = [try await connect(port, "/live"), try await connect(port, "/live")]
            let other = try await connect(port, "/other")
            try await within(5, "the upstream to register the feed") {
                while upstream.gateway.list(ConnectionFilter(groups: ["feed"])).isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            }
            for n in 1...3 {
                _ = await upstream.gateway.broadcast(.text("tick \(n)"), to: ConnectionFilter(groups: ["feed"]))
            }
            for watcher in watchers {
                for n in 1...3 { #expect(try await watcher.receive() == .text("tick \(n)")) }
                try await watcher.close()
            }
            try await other.send(text: "x")
            try await other.close()
            #expect(try await other.receive() == nil)
        }
        try await upstream.stop()
    }
}
