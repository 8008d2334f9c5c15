import GatewayCore
import NIOCore
import WebSocketEngine
import WebSocketTestKit

/// Runs a gateway on a free loopback port for the duration of `body`.
func withGateway<T: Sendable>(
    _ configuration: GatewayConfiguration,
    _ body: (Gateway, Int) async throws -> T
) async throws -> T {
    var configuration = configuration
    configuration.server.host = "127.0.0.1"
    configuration.server.port = 0
    let gateway = try Gateway(configuration: configuration)
    let port = try await gateway.start()!.port!
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await gateway.run() }
        do {
            let result = try await body(gateway, port)
            await gateway.shutdown()
            try await group.waitForAll()
            return result
        } catch {
            await gateway.shutdown()
            try await group.waitForAll()
            throw error
        }
    }
}

/// Connects a client.
func connect(_ port: Int, _ path: String, _ configuration: WebSocketClientConfiguration = .init()) async throws -> WebSocket {
    try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)\(path)", configuration: configuration)
}

typealias Mailbox = TestMailbox

/// Records every event kind of its connections and otherwise echoes.
struct RecordingHandler: GatewayHandler {
    let events: Mailbox<GatewayEvent.Kind>

    func serve(_ context: GatewayContext, events: GatewayEvents) async {
        for await event in events {
            self.events.put(event.kind)
            switch event.kind {
            case .text(let text): try? await context.send(.text(text))
            case .binary(let data): try? await context.send(.binary(data))
            default: break
            }
        }
    }
}
