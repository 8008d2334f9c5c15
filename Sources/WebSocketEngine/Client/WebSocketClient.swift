import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Settings of a WebSocket client connection.
public struct WebSocketClientConfiguration: Sendable {
    /// Settings of the connection once open (limits, compression offer, keepalive...).
    public var connection: WebSocketConfiguration
    /// Extra request headers (for example `Authorization` or `Origin`).
    public var headers: HTTPHeaders
    /// Subprotocols to offer, in order of preference.
    public var subprotocols: [String]
    /// How long connecting and the opening handshake may take together (default 10 s).
    public var handshakeTimeout: TimeAmount
    /// TLS for `wss` URLs: by default the system trust store and full certificate verification. Set
    /// `trustRoots = .file(path)` for a private CA and `certificateChain`/`privateKey` for a client certificate.
    public var tls: TLSConfiguration
    /// The name to send in SNI and verify the certificate against; the URL's host when `nil`.
    public var serverName: String?
    /// The local address to connect from (for example one of several loopback addresses); any when `nil`.
    public var localAddress: SocketAddress?

    /// Creates a configuration with the documented defaults.
    public init(
        connection: WebSocketConfiguration = .init(),
        headers: HTTPHeaders = [:],
        subprotocols: [String] = [],
        handshakeTimeout: TimeAmount = .seconds(10),
        tls: TLSConfiguration = .makeClientConfiguration(),
        serverName: String? = nil,
        localAddress: SocketAddress? = nil
    ) {
        self.connection = connection
        self.headers = headers
        self.subprotocols = subprotocols
        self.handshakeTimeout = handshakeTimeout
        self.tls = tls
        self.serverName = serverName
        self.localAddress = localAddress
    }
}

/// Opens WebSocket connections.
public enum WebSocketClient {
    /// Connects to a `ws://` or `wss://` URL and completes the opening handshake.
    ///
    /// - Throws: ``WebSocketClientError`` for a bad URL or a refused or invalid handshake, or the connect or TLS error.
    public static func connect(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocket {
        let target = try WebSocketURL(url)
        let sslContext = try target.isSecure ? NIOSSLContext(configuration: configuration.tls) : nil
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: WebSocket.self)
        let serverName = configuration.serverName ?? target.host
        var bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(configuration.handshakeTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        // SNI carries names only, never IP literals (RFC 6066 §3).
                        let isIPLiteral = (try? SocketAddress(ipAddress: serverName, port: 0)) != nil
                        try sync.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: isIPLiteral ? nil : serverName))
                    }
                    let encoder = HTTPRequestEncoder()
                    let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
                    try sync.addHandlers(encoder, decoder)
                    try sync.addHandler(
                        ClientUpgradeHandler(
                            url: target, configuration: configuration, httpHandlers: [encoder, decoder],
                            promise: promise))
                }
            }
        if let localAddress = configuration.localAddress {
            bootstrap = bootstrap.bind(to: localAddress)
        }
        do {
            _ = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch {
            promise.fail(error)
        }
        return try await promise.futureResult.get()
    }
}
