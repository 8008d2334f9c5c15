import ArgumentParser
import NIOCore
import NIOSSL
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
    @Option(help: "PEM certificate chain: serve wss:// instead of ws://.") var tlsCertificate: String?
    @Option(help: "PEM private key of the certificate.") var tlsPrivateKey: String?
    @Option(help: "PEM CA whose client certificates are required (mutual TLS).") var tlsClientCA: String?

    func validate() throws {
        if (self.tlsCertificate == nil) != (self.tlsPrivateKey == nil) {
            throw ValidationError("--tls-certificate and --tls-private-key go together")
        }
    }

    func run() async throws {
        let connection = WebSocketConfiguration(compression: self.compression ? PerMessageDeflateConfiguration() : nil)
        var tls: TLSConfiguration?
        if let certificate = self.tlsCertificate, let key = self.tlsPrivateKey {
            tls = try .webSocketServer(
                certificateChainFile: certificate, privateKeyFile: key, clientCAFile: self.tlsClientCA,
                requireClientCertificate: self.tlsClientCA != nil)
        }
        let server = try await WebSocketServer.bind(
            configuration: .init(host: self.host, port: self.port, tls: tls, connection: connection)
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
        print("wsgate: echo server listening on \(tls == nil ? "ws" : "wss")://\(self.host):\(port)/echo (Ctrl-C to stop)")
        fflush(nil)
        await server.run()
    }
}
