import ArgumentParser
import Hummingbird
import HummingbirdWSCompression
import HummingbirdWebSocket
import Logging

/// Peer: an echo server on hummingbird-websocket, `/echo` on 127.0.0.1:PORT, messages up to 16 MiB.
/// Text is UTF-8 validated (as RFC 6455 requires and as our server does); `--deflate` accepts permessage-deflate.
@main
struct PeerHummingbird: AsyncParsableCommand {
    @Argument(help: "Port.") var port = 9302
    @Option var host = "127.0.0.1"
    @Flag(help: "Accept permessage-deflate.") var deflate = false

    static let maxMessageSize = 16 << 20

    func run() async throws {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.ws("/echo") { _, _ in
            .upgrade()
        } onUpgrade: { inbound, outbound, _ in
            for try await message in inbound.messages(maxSize: Self.maxMessageSize) {
                switch message {
                case .text(let text): try await outbound.write(.text(text))
                case .binary(let buffer): try await outbound.write(.binary(buffer))
                }
            }
        }
        var logger = Logger(label: "peer-hummingbird")
        logger.logLevel = .warning
        let app = Application(
            router: Router(),
            server: .http1WebSocketUpgrade(
                webSocketRouter: router,
                configuration: .init(
                    maxFrameSize: Self.maxMessageSize,
                    extensions: self.deflate
                        ? [.perMessageDeflate(maxDecompressedFrameSize: Self.maxMessageSize, minFrameSizeToCompress: 32)]
                        : [],
                    validateUTF8: true)),
            configuration: .init(address: .hostname(self.host, port: self.port), backlog: 4096),
            onServerRunning: { channel in
                print("peer-hummingbird listening on \(channel.localAddress!)")
            },
            logger: logger
        )
        try await app.runService()
    }
}
