import ArgumentParser
import GatewayCore
import NIOCore
import NIOPosix
import WebSocketEngine

#if canImport(Glibc)
import Glibc
#endif

/// The gateway under measurement: `/echo` echoes, `/feed` subscribers join group `feed`, and every message sent
/// to `/publish` is broadcast to `feed` (the publisher gets back `delivered=N failures=M`).
@main
struct BenchGateway: AsyncParsableCommand {
    @Option var host = "127.0.0.1"
    @Option var port = 9300
    @Option(help: "Connection limit of the gateway.") var maxConnections = 30_000
    @Flag(help: "Serve /feed with the bare engine instead of the gateway (to split memory and time by layer).") var engineOnly = false
    @Flag(help: "Accept TCP connections and hold them with SwiftNIO alone (the floor under the engine).") var bareNIO = false

    final class Discard: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }

    struct Publisher: GatewayHandler {
        func onText(_ context: GatewayContext, _ text: String) async {
            let result = await context.gateway.broadcast(.text(text), to: ConnectionFilter(groups: ["feed"]))
            try? await context.send(.text("delivered=\(result.delivered) failures=\(result.failures.count)"))
        }
    }

    struct Subscriber: GatewayHandler {}

    func run() async throws {
        var server = WebSocketServerConfiguration(host: self.host, port: self.port)
        server.backlog = 4096
        // As the peers: no admission limits (thousands of subscribers connect from one loopback address).
        server.admission = .unlimited
        if self.bareNIO {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { $0.pipeline.addHandler(Discard()) }
                .bind(host: self.host, port: self.port).get()
            print("bench-gateway (bare NIO) listening on \(channel.localAddress!) pid \(getpid())")
            fflush(nil)
            try await channel.closeFuture.get()
            return
        }
        if self.engineOnly {
            let engine = try await WebSocketServer.bind(configuration: server) { _ in
                // Events go to a callback: an idle connection holds no task, as with the gateway's callback handlers.
                .accept(WebSocketAcceptance { socket in socket.deliverEvents { _ in } })
            }
            print("bench-gateway (engine only) listening on \(engine.localAddress!) pid \(getpid())")
            fflush(nil)
            await engine.run()
            return
        }
        let gateway = try Gateway(configuration: GatewayConfiguration(
            server: server,
            routes: [
                try GatewayRoute(path: "/echo", handler: EchoHandler()),
                try GatewayRoute(path: "/feed", handler: Subscriber(), groups: ["feed"]),
                try GatewayRoute(path: "/publish", handler: Publisher()),
            ],
            maxConnections: self.maxConnections,
            idleAction: .notify))
        let address = try await gateway.start()
        print("bench-gateway listening on \(address!) pid \(getpid())")
        fflush(nil)
        try await gateway.run()
    }
}
