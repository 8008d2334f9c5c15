import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Settings of a WebSocket server.
public struct WebSocketServerConfiguration: Sendable {
    /// The address to listen on (default 127.0.0.1).
    public var host: String
    /// The port to listen on; 0 picks a free one (see ``WebSocketServer/localAddress``).
    public var port: Int
    /// TLS for `wss`: certificate chain, key and, for mutual TLS, trust roots and client verification.
    public var tls: TLSConfiguration?
    /// Settings of each accepted connection.
    public var connection: WebSocketConfiguration
    /// Subprotocols in the server's order of preference.
    public var subprotocols: [String]
    /// Limits on the upgrade request.
    public var requestLimits: WebSocketRequestLimits
    /// How long a client has to complete the handshake, the application's decision included (default 10 s).
    public var handshakeTimeout: TimeAmount
    /// Listen backlog.
    public var backlog: Int32
    /// The size of a new connection's first receive buffer (default 512 bytes). Reads that fill it make the next
    /// one larger, up to 64 KiB, and a run of small reads shrinks it again. SwiftNIO keeps a connection's last
    /// receive buffer for its next read, so an idle connection holds one buffer of about this size (SwiftNIO's own
    /// default is 2 KiB).
    public var initialReceiveBufferSize: Int
    /// Limits on connections in their handshake and per source address (see ``WebSocketAdmissionLimits``).
    public var admission: WebSocketAdmissionLimits
    /// Told of refused connections and of accept errors, for logs and metrics. Called on event loops: it must not
    /// block.
    public var onEvent: (@Sendable (WebSocketServerEvent) -> Void)?

    /// Creates a configuration with the documented defaults.
    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        tls: TLSConfiguration? = nil,
        connection: WebSocketConfiguration = .init(),
        subprotocols: [String] = [],
        requestLimits: WebSocketRequestLimits = .init(),
        handshakeTimeout: TimeAmount = .seconds(10),
        backlog: Int32 = 1024,
        initialReceiveBufferSize: Int = 512,
        admission: WebSocketAdmissionLimits = .init(),
        onEvent: (@Sendable (WebSocketServerEvent) -> Void)? = nil
    ) {
        self.admission = admission
        self.onEvent = onEvent
        self.host = host
        self.port = port
        self.tls = tls
        self.connection = connection
        self.subprotocols = subprotocols
        self.requestLimits = requestLimits
        self.handshakeTimeout = handshakeTimeout
        self.backlog = backlog
        self.initialReceiveBufferSize = initialReceiveBufferSize
    }
}

/// A WebSocket server: listens, runs the opening handshake and serves each accepted connection in a task of its own
/// on the connection's event loop; ``run()`` waits for them all.
///
/// ```swift
/// let server = try await WebSocketServer.bind(configuration: .init(port: 0)) { request in
///     guard request.path == "/echo" else { return .reject(.init(status: .notFound, reason: "no route for \(request.path)")) }
///     return .accept(.init { socket in
///         while let message = try await socket.receive() { try await socket.send(message) }
///     })
/// }
/// try await server.run()
/// ```
public final class WebSocketServer: Sendable {
    private let listener: any Channel
    private let served: ServedConnections

    /// The address the server listens on.
    public var localAddress: SocketAddress? { self.listener.localAddress }

    private init(listener: any Channel, served: ServedConnections) {
        self.listener = listener
        self.served = served
    }

    /// Starts listening. `onUpgrade` is called for every valid upgrade request and decides to accept or reject it.
    ///
    /// - Parameter decideNow: decides an upgrade on the spot when it can (a routing table lookup, say), on the
    ///   connection's event loop and without a task; it returns `nil` to leave the request to `onUpgrade`. It must
    ///   not block.
    public static func bind(
        configuration: WebSocketServerConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        decideNow: (@Sendable (WebSocketUpgradeRequest) -> WebSocketUpgradeDecision?)? = nil,
        onUpgrade: @escaping @Sendable (WebSocketUpgradeRequest) async -> WebSocketUpgradeDecision
    ) async throws -> WebSocketServer {
        let sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        let served = ServedConnections()
        let admission = ServerAdmission(limits: configuration.admission, onEvent: configuration.onEvent)
        let listener = try await ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(onEvent: configuration.onEvent))
                }
            }
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(
                    minimum: 64, initial: max(64, min(configuration.initialReceiveBufferSize, 65536)), maximum: 65536))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
                    let encoder = HTTPResponseEncoder()
                    try sync.addHandlers(decoder, encoder)
                    try sync.addHandler(
                        ServerUpgradeHandler(
                            configuration: configuration, httpHandlers: [decoder, encoder],
                            decideNow: decideNow, onUpgrade: onUpgrade, served: served, admission: admission))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        return WebSocketServer(listener: listener, served: served)
    }

    /// Returns once the server has stopped listening (``shutdown(code:reason:)``, or cancellation, which shuts
    /// it down) and every connection's handler has returned.
    ///
    /// Connections are served from the moment the server is bound, each in a task of its own on its channel's
    /// event loop; `run()` is where a service waits for them (see ``ServedConnections`` for who owns those
    /// tasks). Cancellation starts the shutdown without a task of its own: closing the listener and the
    /// connections is what this body is already waiting for.
    public func run() async {
        await withTaskCancellationHandler {
            try? await self.listener.closeFuture.get()
            await self.served.waitUntilAllEnded()
        } onCancel: {
            self.startShutdown(code: .goingAway, reason: "server shutting down")
        }
    }

    /// Stops listening and closes every open connection with `code` (1001 by default), waiting at most the close
    /// timeout for each.
    public func shutdown(code: WebSocketCloseCode = .goingAway, reason: String = "server shutting down") async {
        let sockets = self.startShutdown(code: code, reason: reason)
        try? await self.listener.closeFuture.get()
        for socket in sockets {
            _ = await socket.closeInfo
        }
    }

    /// Stops listening and starts the closing handshake of every connection (each bounded by its close
    /// timeout); returns the connections being closed.
    @discardableResult
    private func startShutdown(code: WebSocketCloseCode, reason: String) -> [WebSocket] {
        self.listener.close(promise: nil)
        let sockets = self.served.shutDown(code: code, reason: reason)
        for socket in sockets {
            socket.startClose(code: code, reason: reason)
        }
        return sockets
    }
}
