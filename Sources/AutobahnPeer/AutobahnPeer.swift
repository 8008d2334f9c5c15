import ArgumentParser
import NIOCore
import WebSocketEngine

#if canImport(Glibc)
import Glibc
#endif

/// The peer that Autobahn|TestSuite tests: an echo server for the fuzzing client (taking events as a consumer, the
/// gateway's way), and a client that runs every case of the fuzzing server (through `receive()`). Both use the
/// engine's public API only.
@main
struct AutobahnPeer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autobahn-peer",
        abstract: "Serve or drive Autobahn|TestSuite with the WebSocketGateway engine.",
        subcommands: [Server.self, Client.self]
    )

    /// Autobahn sends messages of up to 16 MiB (section 9); everything else stays at its default.
    static let connection = WebSocketConfiguration(
        maxFrameSize: 32 << 20,
        maxMessageSize: 32 << 20,
        compression: PerMessageDeflateConfiguration(),
        outboundQueueSize: 32 << 20
    )

    /// The client's echo: whole messages through `receive()`.
    static func echo(_ socket: WebSocket) async throws {
        while let message = try await socket.receive() {
            try await socket.send(message)
        }
    }

    /// The server's echo, as the gateway's `echo` handler does it: each message is answered in the channel's read
    /// (`trySend`), and in a task only when the outbound queue is full.
    final class EchoConsumer: WebSocketEventConsumer, @unchecked Sendable {
        // Touched on the connection's event loop only.
        private let socket: WebSocket
        private var waiting: WebSocketMessage?

        init(_ socket: WebSocket) {
            self.socket = socket
        }

        func take(_ event: WebSocketEvent) -> Bool {
            guard let message = event.message else { return true }
            guard (try? self.socket.trySend(message)) == false else { return true }
            self.waiting = message
            return false
        }

        func finish() async {
            guard let message = self.waiting else { return }
            self.waiting = nil
            try? await self.socket.send(message)
        }
    }

    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run an echo server for the fuzzing client.")

        @Option(help: "Address to listen on.") var host = "127.0.0.1"
        @Option(help: "Port to listen on.") var port = 9001

        func run() async throws {
            let server = try await WebSocketServer.bind(
                configuration: .init(host: self.host, port: self.port, connection: AutobahnPeer.connection)
            ) { _ in
                .accept(WebSocketAcceptance { socket in socket.deliverEvents(consumer: EchoConsumer(socket)) })
            }
            print("listening on \(self.host):\(server.localAddress?.port ?? self.port)")
            fflush(nil)
            await server.run()
        }
    }

    struct Client: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run every case of a fuzzing server, then update its reports.")

        @Option(help: "The fuzzing server's URL, e.g. ws://127.0.0.1:9001.") var url: String
        @Option(help: "The agent name reports are filed under.") var agent = "WebSocketGateway"

        func run() async throws {
            let configuration = WebSocketClientConfiguration(connection: AutobahnPeer.connection)
            let counter = try await WebSocketClient.connect(to: "\(self.url)/getCaseCount", configuration: configuration)
            guard case .text(let text)? = try await counter.receive(), let count = Int(text) else {
                throw ValidationError("the fuzzing server did not send a case count")
            }
            _ = await counter.closeInfo
            print("running \(count) cases")
            for index in 1...count {
                do {
                    let socket = try await WebSocketClient.connect(
                        to: "\(self.url)/runCase?case=\(index)&agent=\(self.agent)", configuration: configuration)
                    do {
                        try await AutobahnPeer.echo(socket)
                    } catch {
                        // The case decides how the connection ends; a failed send is part of some cases.
                    }
                    _ = await socket.closeInfo
                } catch {
                    print("case \(index): \(error)")
                }
            }
            let reports = try await WebSocketClient.connect(
                to: "\(self.url)/updateReports?agent=\(self.agent)", configuration: configuration)
            _ = await reports.closeInfo
            print("reports updated")
        }
    }
}
