import ArgumentParser
import NIOCore
import WebSocketEngine

#if canImport(Glibc)
import Glibc
#endif

/// `wsgate`: for now an echo server on the protocol engine; the gateway daemon grows from here.
@main
struct WSGate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsgate",
        abstract: "WebSocketGateway: serve WebSocket connections.",
        discussion: "Without options it serves an echo endpoint at ws://127.0.0.1:8080/echo."
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8080
    @Flag(help: "Accept permessage-deflate compression.") var compression = false

    func run() async throws {
        let connection = WebSocketConfiguration(compression: self.compression ? PerMessageDeflateConfiguration() : nil)
        let server = try await WebSocketServer.bind(
            configuration: .init(host: self.host, port: self.port, connection: connection)
        ) { request in
            guard request.path == "/echo" || request.path == "/" else {
                return .reject(.init(status: .notFound, reason: "no WebSocket endpoint at \(request.path); try /echo"))
            }
            return .accept(WebSocketAcceptance { socket in
                while let message = try await socket.receive() {
                    try await socket.send(message)
                }
            })
        }
        let port = server.localAddress?.port ?? self.port
        print("wsgate: echo server listening on ws://\(self.host):\(port)/echo (Ctrl-C to stop)")
        fflush(nil)
        await server.run()
    }
}
