import NIOCore
import WebSocketEngine

/// Runs a server on a free loopback port for the duration of `body`, which gets the port.
public func withServer<T: Sendable>(
    _ configuration: WebSocketServerConfiguration = .init(port: 0),
    onUpgrade: @escaping @Sendable (WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision,
    _ body: (Int) async throws -> T
) async throws -> T {
    var configuration = configuration
    configuration.host = "127.0.0.1"
    configuration.port = 0
    let server = try await WebSocketServer.bind(configuration: configuration, onUpgrade: onUpgrade)
    let port = server.localAddress!.port!
    return try await whileRunning({ await server.run() }, shutdown: { await server.shutdown() }) { try await body(port) }
}
