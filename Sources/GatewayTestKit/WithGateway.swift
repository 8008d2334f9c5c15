import GatewayCore
import NIOCore
import WebSocketEngine
import WebSocketTestKit

/// Runs a gateway on a free loopback port for the duration of `body`, which gets the gateway and the port; then
/// shuts it down and waits until every connection has ended.
public func withGateway<T: Sendable>(
    _ configuration: GatewayConfiguration,
    _ body: (Gateway, Int) async throws -> T
) async throws -> T {
    var configuration = configuration
    configuration.server.host = "127.0.0.1"
    configuration.server.port = 0
    let gateway = try Gateway(configuration: configuration)
    let port = try await gateway.start()!.port!
    return try await whileRunning({ try await gateway.run() }, shutdown: { await gateway.shutdown() }) { try await body(gateway, port) }
}
