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
    /// How long connecting (through the proxy, if any), the opening handshake and any redirects may take together
    /// (default 10 s).
    public var handshakeTimeout: TimeAmount
    /// TLS for `wss` URLs: by default the system trust store and full certificate verification. Set
    /// `trustRoots = .file(path)` for a private CA and `certificateChain`/`privateKey` for a client certificate.
    public var tls: TLSConfiguration
    /// The name to send in SNI and verify the certificate against; the URL's host when `nil`. It applies to the URL
    /// given to ``WebSocketClient/connect(to:configuration:group:)``, not to the other hosts a redirect leads to.
    public var serverName: String?
    /// The local address to connect from (for example one of several loopback addresses); any when `nil`.
    public var localAddress: SocketAddress?
    /// The HTTP CONNECT proxy to reach servers through (unless its `noProxy` list names the host); none when `nil`.
    public var proxy: WebSocketProxy?
    /// How many redirects (301, 302, 303, 307, 308 with a `Location`) to follow; 0, the default, makes a redirect an
    /// ``WebSocketClientError`` of kind `unexpectedStatus`. Headers, authorization and cookies go to every hop,
    /// with the cookies the redirects set.
    public var maxRedirects: Int
    /// The `Authorization` header to send, unless ``headers`` has one; when `nil`, the URL's user and password
    /// (if any) are sent as Basic authorization.
    public var authorization: WebSocketAuthorization?
    /// Cookies to send, as one `Cookie` header with the names in sorted order (after the cookies of a `Cookie`
    /// header in ``headers``).
    public var cookies: [String: String]

    /// Creates a configuration with the documented defaults.
    public init(
        connection: WebSocketConfiguration = .init(),
        headers: HTTPHeaders = [:],
        subprotocols: [String] = [],
        handshakeTimeout: TimeAmount = .seconds(10),
        tls: TLSConfiguration = .makeClientConfiguration(),
        serverName: String? = nil,
        localAddress: SocketAddress? = nil,
        proxy: WebSocketProxy? = nil,
        maxRedirects: Int = 0,
        authorization: WebSocketAuthorization? = nil,
        cookies: [String: String] = [:]
    ) {
        self.connection = connection
        self.headers = headers
        self.subprotocols = subprotocols
        self.handshakeTimeout = handshakeTimeout
        self.tls = tls
        self.serverName = serverName
        self.localAddress = localAddress
        self.proxy = proxy
        self.maxRedirects = maxRedirects
        self.authorization = authorization
        self.cookies = cookies
    }
}

/// Opens WebSocket connections.
public enum WebSocketClient {
    /// Connects to a `ws://` or `wss://` URL and completes the opening handshake, through the configured proxy and
    /// following redirects as configured.
    ///
    /// - Throws: ``WebSocketClientError`` for a bad URL, a refusing proxy, a refused or invalid handshake or too
    ///   many redirects, or the connect or TLS error.
    public static func connect(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocket {
        let first = try WebSocketURL(url)
        let deadline = NIODeadline.now() + configuration.handshakeTimeout
        var target = first
        var authorization = configuration.authorization
            ?? first.userinfo.map { .basic(username: $0.user, password: $0.password) }
        var cookies = configuration.cookies
        var sslContext: NIOSSLContext?
        var redirects = 0
        while true {
            if target.isSecure, sslContext == nil {
                sslContext = try NIOSSLContext(configuration: configuration.tls)
            }
            // Credentials and cookies go only to the origin they were configured for: a redirect to another host,
            // port, or from wss to ws, drops them (as browsers and curl do).
            let sameOrigin = target.host.lowercased() == first.host.lowercased() && target.port == first.port
                && (target.isSecure || !first.isSecure)
            var ownHeaders = configuration.headers
            if !sameOrigin {
                ownHeaders.remove(name: "Authorization")
                ownHeaders.remove(name: "Cookie")
            }
            let headers = ClientHandshake.extraHeaders(
                ownHeaders, authorization: sameOrigin ? authorization : target.userinfo.map { .basic(username: $0.user, password: $0.password) },
                cookies: sameOrigin ? cookies : [:])
            let serverName = (target.host == first.host ? configuration.serverName : nil) ?? target.host
            do {
                return try await self.open(
                    target, headers: headers, serverName: serverName, sslContext: target.isSecure ? sslContext : nil,
                    deadline: deadline, configuration: configuration, group: group)
            } catch {
                guard configuration.maxRedirects > 0, let redirect = WebSocketRedirect.location(of: error) else { throw error }
                guard redirects < configuration.maxRedirects else {
                    throw WebSocketClientError.tooManyRedirects(configuration.maxRedirects)
                }
                redirects += 1
                let from = target
                target = try WebSocketRedirect.resolve(redirect.location, against: target)
                // Cookies set by the original origin are kept for it; others' are not ours to send.
                if from.host.lowercased() == first.host.lowercased(), from.port == first.port {
                    for cookie in WebSocketRedirect.cookies(in: redirect.headers) { cookies[cookie.name] = cookie.value }
                }
                if configuration.authorization == nil, let userinfo = target.userinfo {
                    authorization = .basic(username: userinfo.user, password: userinfo.password)
                }
            }
        }
    }

    /// One attempt: TCP (to the proxy or the server), the tunnel if proxied, TLS for `wss`, then the handshake.
    private static func open(
        _ target: WebSocketURL,
        headers: HTTPHeaders,
        serverName: String,
        sslContext: NIOSSLContext?,
        deadline: NIODeadline,
        configuration: WebSocketClientConfiguration,
        group: any EventLoopGroup
    ) async throws -> WebSocket {
        let remaining = deadline - .now()
        guard remaining > .zero else { throw WebSocketClientError.handshakeTimeout }
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: WebSocket.self)
        let proxy = configuration.proxy.flatMap { $0.applies(to: target.host) ? $0 : nil }
        // Installed at once, or by the proxy handler once the tunnel is open: TLS then runs with the target, and
        // names and verifies the target, never the proxy.
        let installHandshake: @Sendable (any Channel) throws -> Void = { channel in
            let sync = channel.pipeline.syncOperations
            if let sslContext {
                // SNI carries names only, never IP literals (RFC 6066 §3).
                let isIPLiteral = (try? SocketAddress(ipAddress: serverName, port: 0)) != nil
                try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: isIPLiteral ? nil : serverName))
            }
            let encoder = HTTPRequestEncoder()
            let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
            try sync.addHandlers(encoder, decoder)
            try sync.addHandler(
                ClientUpgradeHandler(
                    url: target, configuration: configuration, headers: headers, deadline: deadline,
                    httpHandlers: [encoder, decoder], promise: promise))
        }
        var bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(remaining)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let proxy {
                        try channel.pipeline.syncOperations.addHandler(
                            ProxyConnectHandler(
                                proxy: proxy, target: target, deadline: deadline, promise: promise,
                                established: installHandshake))
                    } else {
                        try installHandshake(channel)
                    }
                }
            }
        if let localAddress = configuration.localAddress {
            bootstrap = bootstrap.bind(to: localAddress)
        }
        do {
            _ = try await bootstrap.connect(host: proxy?.host ?? target.host, port: proxy?.port ?? target.port).get()
        } catch ChannelError.connectTimeout {
            // The connect used up what was left of the handshake deadline.
            promise.fail(WebSocketClientError.handshakeTimeout)
        } catch {
            promise.fail(error)
        }
        return try await promise.futureResult.get()
    }
}
