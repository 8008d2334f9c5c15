import GatewayCore
import GatewayTestKit
import NIOCore
import Testing
import WebSocketEngine
import WebSocketTestKit

/// The gateway-wide bound on outbound queues (``GatewayConfiguration/maxOutboundQueuedBytes``) over loopback:
/// clients that stop reading fill it, and then only connections with bytes waiting are refused.
@Suite("Gateway: the outbound queues' total is bounded")
struct OutboundBudgetTests {
    @Test func slowClientsShareOneBudgetWhileFastOnesKeepReceiving() async throws {
        var connection = WebSocketConfiguration()
        // Each queue alone could hold 64 MiB: only the gateway-wide 256 KiB can stop them.
        connection.outboundQueueSize = 64 << 20
        var configuration = GatewayConfiguration(routes: [try GatewayRoute(path: "/s", handler: EchoHandler(), connection: connection)])
        configuration.maxOutboundQueuedBytes = 256 << 10
        configuration.slowConsumer = .drop
        try await withGateway(configuration) { gateway, port in
            let budget = try #require(gateway.outboundBudget)
            // Clients that stop reading stop at once (one held event).
            var stalled = WebSocketClientConfiguration()
            stalled.connection.inboundBufferedEvents = 1
            let first = try await connect(port, "/s", stalled)
            let second = try await connect(port, "/s", stalled)
            let reader = try await connect(port, "/s")
            #expect(gateway.list().count == 3)
            // Fill the first client's socket buffers, then the budget.
            let slow = try #require(self.id(of: first, in: gateway))
            let refusal = await firstRefusal(gateway, slow)
            #expect(refusal?.kind == .slowConsumer)
            #expect(budget.queuedBytes >= budget.limit && budget.queuedBytes < 64 << 20, "\(budget.queuedBytes) bytes queued")
            // The reading client still gets every message: its queue is empty.
            let readerID = try #require(self.id(of: reader, in: gateway))
            for index in 0..<20 {
                try await gateway.send(readerID, .text("m\(index)"))
                #expect(try await reader.receive() == .text("m\(index)"))
            }
            // Closing the stalled clients gives the budget back.
            try await first.close()
            try await second.close()
            try await within(20, "the budget emptied") {
                while budget.queuedBytes > 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
            try await reader.close()
        }
    }

    /// The gateway's id of `client`'s connection, found by the client's address.
    private func id(of client: WebSocket, in gateway: Gateway) -> String? {
        guard let local = client.localAddress, let ip = local.ipAddress, let port = local.port else { return nil }
        return gateway.list().map(\.rawValue).first { (try? gateway.info($0).remoteAddress) == "\(ip):\(port)" }
    }
}
