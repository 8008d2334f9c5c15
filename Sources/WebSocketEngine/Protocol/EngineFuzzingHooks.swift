import NIOCore
import NIOHTTP1

/// Entry points into the engine's internal parsers for the libFuzzer targets of the `Fuzz/` package
/// (`@_spi(Fuzzing) import WebSocketEngine`). Each one runs the engine's own code, the way a connection does, on
/// input the caller made up. Not API: they may change with the internals they reach.
@_spi(Fuzzing)
public enum EngineFuzzingHooks {
    /// What a client takes from a server's answer to its upgrade request.
    public enum ClientOutcome: Sendable {
        /// A valid 101: the agreed subprotocol and permessage-deflate parameters.
        case upgraded(subprotocol: String?, compression: PerMessageDeflateParameters?)
        /// A redirect the client would follow: where to, and the cookies it would keep.
        case redirected(WebSocketURL, cookies: [String])
        /// The answer is refused, with the client's error.
        case refused(WebSocketClientError)
    }

    /// Adds the connection handler to `channel` as a finished handshake does (``WebSocket``'s own installation)
    /// and starts it, with nothing else left in the pipeline. The channel must be active, and this must run on its
    /// event loop (an `EmbeddedChannel`'s).
    public static func installConnection(
        on channel: any Channel,
        role: WebSocketRole,
        compression: PerMessageDeflateParameters?,
        configuration: WebSocketConfiguration
    ) throws -> WebSocket {
        let socket = try WebSocket.install(
            on: channel, role: role, request: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"),
            subprotocol: nil, compression: compression, isSecure: false, configuration: configuration)
        try channel.pipeline.syncOperations.handler(type: WebSocketChannelHandler.self).activate()
        return socket
    }

    /// The server's answer to an upgrade request that the application accepts, computed as the server's upgrade
    /// handler does: the request's checks, the choice of subprotocol, the permessage-deflate negotiation and the
    /// 101's headers; or the rejection the server would answer with.
    public static func answerUpgradeRequest(
        _ head: HTTPRequestHead,
        limits: WebSocketRequestLimits,
        subprotocols: [String],
        compression: PerMessageDeflateConfiguration?
    ) -> Result<HTTPHeaders, WebSocketHandshakeRejection> {
        let offer: ServerHandshake.Offer
        switch ServerHandshake.validate(head, limits: limits) {
        case .success(let valid): offer = valid
        case .failure(let rejection): return .failure(rejection)
        }
        _ = ServerUpgradeHandler.split(head.uri)
        let subprotocol = ServerHandshake.chooseSubprotocol(offered: offer.subprotocols, supported: subprotocols)
        let parameters = compression.flatMap { PerMessageDeflateNegotiation.accept(offers: offer.extensions, configuration: $0) }
        return .success(
            ServerHandshake.responseHeaders(key: offer.key, subprotocol: subprotocol, extensions: parameters?.headerValue, extra: [:]))
    }

    /// The client's reading of a server's answer to a request sent with `key`, `subprotocols` and `compression`
    /// (the client's upgrade handler and its redirects, as ``WebSocketClient/connect(to:configuration:group:)``
    /// follows them from `url`).
    public static func readUpgradeResponse(
        _ head: HTTPResponseHead,
        key: String,
        subprotocols: [String],
        compression: PerMessageDeflateConfiguration?,
        url: WebSocketURL
    ) -> ClientOutcome {
        guard head.status == .switchingProtocols else {
            let error = WebSocketClientError.unexpectedStatus(head.status, headers: head.headers, body: nil)
            guard let redirect = WebSocketRedirect.location(of: error) else { return .refused(error) }
            do throws(WebSocketClientError) {
                let target = try WebSocketRedirect.resolve(redirect.location, against: url)
                return .redirected(target, cookies: WebSocketRedirect.cookies(in: redirect.headers).map { "\($0.name)=\($0.value)" })
            } catch {
                return .refused(error)
            }
        }
        switch ClientHandshake.validate(head, key: key, subprotocols: subprotocols, compression: compression) {
        case .success(let agreement):
            return .upgraded(subprotocol: agreement.subprotocol, compression: agreement.compression)
        case .failure(let error):
            return .refused(error)
        }
    }

    /// The `Sec-WebSocket-Accept` value that answers `key`.
    public static func acceptValue(forKey key: String) -> String {
        HandshakeRules.acceptValue(forKey: key)
    }

    /// Parses `Sec-WebSocket-Extensions` header values: each element rendered back as a header value, `nil` for an
    /// element that is syntactically broken.
    public static func parseExtensions(_ values: [String]) -> [String?] {
        WebSocketExtensionElement.parse(headerValues: values).map { $0?.headerValue }
    }

    /// A server's answer to the permessage-deflate offers in `values`, or `nil` when it declines them all.
    public static func acceptDeflateOffers(_ values: [String], configuration: PerMessageDeflateConfiguration) -> PerMessageDeflateParameters? {
        PerMessageDeflateNegotiation.accept(offers: WebSocketExtensionElement.parse(headerValues: values), configuration: configuration)
    }

    /// A client's check of a server's extension answer in `values` after offering `configuration`: the agreed
    /// parameters (`nil`: no extension), or the reason the client fails the connection.
    public static func checkDeflateAnswer(
        _ values: [String],
        offered configuration: PerMessageDeflateConfiguration?
    ) -> Result<PerMessageDeflateParameters?, WebSocketClientError> {
        PerMessageDeflateNegotiation.validate(answer: WebSocketExtensionElement.parse(headerValues: values), offered: configuration)
            .mapError { .invalidExtensions($0.reason) }
    }

    /// The `Sec-WebSocket-Extensions` value of the offer a client with `configuration` sends.
    public static func deflateOffer(_ configuration: PerMessageDeflateConfiguration) -> String {
        PerMessageDeflateNegotiation.offer(configuration: configuration).headerValue
    }
}
