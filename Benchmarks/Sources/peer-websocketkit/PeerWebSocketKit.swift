import ArgumentParser
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import WebSocketKit

/// Peer: an echo server on vapor's websocket-kit, served on SwiftNIO directly with the pipeline Vapor builds
/// (HTTP/1 server pipeline, `NIOWebSocketServerUpgrader`, websocket-kit's handler); `/echo` on 127.0.0.1:PORT,
/// messages up to 16 MiB.
@main
struct PeerWebSocketKit: AsyncParsableCommand {
    @Argument(help: "Port.") var port = 9303
    @Option var host = "127.0.0.1"

    static let maxMessageSize = 16 << 20

    func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        var configuration = WebSocket.Configuration()
        configuration.maxAccumulatedFrameSize = Self.maxMessageSize
        configuration.maxAccumulatedFrameCount = 1 << 16
        let serverConfiguration = configuration
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: Self.maxMessageSize,
                    shouldUpgrade: { channel, head in
                        channel.eventLoop.makeSucceededFuture(head.uri == "/echo" ? HTTPHeaders() : nil)
                    },
                    upgradePipelineHandler: { channel, _ in
                        WebSocket.server(on: channel, config: serverConfiguration) { socket in
                            socket.onText { socket, text in socket.send(text) }
                            socket.onBinary { socket, buffer in socket.send(buffer, opcode: .binary) }
                        }
                    }
                )
                return channel.pipeline.configureHTTPServerPipeline(
                    withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            }
            .bind(host: self.host, port: self.port)
            .get()
        print("peer-websocketkit listening on \(channel.localAddress!)")
        try await channel.closeFuture.get()
    }
}
