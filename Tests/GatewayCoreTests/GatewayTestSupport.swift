import GatewayCore
import NIOCore
import WebSocketEngine
import GatewayTestKit
import WebSocketTestKit

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

/// Records every event kind of its connections and never replies (for outbound sockets to echo servers).
struct ListeningHandler: GatewayHandler {
    let events: Mailbox<GatewayEvent.Kind>

    func serve(_ context: GatewayContext, events: GatewayEvents) async {
        for await event in events { self.events.put(event.kind) }
    }
}

extension TestMailbox where Value == GatewayEvent.Kind {
    /// Takes events until one matches, returning it and the events skipped before it.
    func next(_ what: String, seconds: Double = 10, where match: @escaping @Sendable (GatewayEvent.Kind) -> Bool) async throws -> (GatewayEvent.Kind, [GatewayEvent.Kind]) {
        try await within(seconds, what) {
            var skipped: [GatewayEvent.Kind] = []
            while let event = await self.take() {
                if match(event) { return (event, skipped) }
                skipped.append(event)
            }
            throw TimedOut(what: what)
        }
    }
}

/// An upstream WebSocket service for outbound sockets: a gateway on a fixed or free loopback port that can be
/// stopped and started again on the same port.
final class Upstream: Sendable {
    let gateway: Gateway
    let port: Int
    private let task: Task<Void, any Error>

    private init(gateway: Gateway, port: Int) {
        self.gateway = gateway
        self.port = port
        self.task = Task { try await gateway.run() }
    }

    static func start(port: Int = 0, routes: [GatewayRoute]) async throws -> Upstream {
        var configuration = GatewayConfiguration(routes: routes)
        configuration.server.host = "127.0.0.1"
        configuration.server.port = port
        let gateway = try Gateway(configuration: configuration)
        let bound = try await gateway.start()!.port!
        return Upstream(gateway: gateway, port: bound)
    }

    func stop() async throws {
        await self.gateway.shutdown()
        try await self.task.value
    }
}

/// Sends 64 KiB messages to a connection whose client does not read, until the gateway refuses one; returns that
/// refusal (`nil` after 10,000 sends).
func firstRefusal(_ gateway: Gateway, _ id: String) async -> GatewayError? {
    for _ in 0..<10_000 {
        do throws(GatewayError) {
            try await gateway.send(id, .binary(ByteBuffer(repeating: 2, count: 64 * 1024)))
        } catch {
            return error
        }
    }
    return nil
}
