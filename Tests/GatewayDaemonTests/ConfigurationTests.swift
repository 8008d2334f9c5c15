import GatewayCore
import GatewayDaemon
import NIOCore
import Testing

@Suite("Daemon configuration file")
struct ConfigurationTests {
    static let example = """
        listen: 127.0.0.1:8080
        admin: {listen: 127.0.0.1:9090, token: ${WSGATE_ADMIN_TOKEN}}
        limits: {max_connections: 10000, max_frame_size: 1MiB, max_message_size: 1MiB, handshake_timeout: 10s,
                 idle_timeout: 15m, close_timeout: 5s, outbound_queue_size: 1MiB, slow_consumer: close}
        keepalive: {ping_interval: 25s, pong_timeout: 10s}
        compression: {enabled: true}
        rate_limit: {messages_per_second: 5, burst: 5, on_exceed: close}
        allowed_origins: [https://app.example.com]
        routes:
          - path: /echo
            handler: echo
          - path: /chat/{room}
            handler: broadcast
            groups: ["room:{room}"]
            subprotocols: [chat.v1]
          - path: /devices/{device_id}
            handler: webhook
            webhook: {url: http://127.0.0.1:3000/events, events: [open, data, close], timeout: 5s, retries: 3, secret: ${HOOK_SECRET}}
            limits: {max_message_size: 64KiB}
            rate_limit: {messages_per_second: 5, burst: 10, on_exceed: drop}
        """

    @Test func readsTheDocumentedExample() throws {
        let configuration = try DaemonConfiguration.parse(yaml: Self.example, environment: ["WSGATE_ADMIN_TOKEN": "s3cret", "HOOK_SECRET": "hook"])
        #expect(configuration.listen == ListenAddress(host: "127.0.0.1", port: 8080))
        #expect(configuration.admin.token == "s3cret")
        #expect(configuration.limits.maxMessageSize == 1 << 20 && configuration.limits.idleTimeout == .minutes(15))
        #expect(configuration.keepalive?.pingInterval == .seconds(25) && configuration.compression.enabled)
        #expect(configuration.rateLimit?.burst == 5 && configuration.allowedOrigins == ["https://app.example.com"])
        #expect(configuration.routes.map(\.path) == ["/echo", "/chat/{room}", "/devices/{device_id}"])
        #expect(configuration.routes[2].handler.webhook?.secret == "hook" && configuration.routes[2].handler.webhook?.retries == 3)
        #expect(configuration.routes[2].limits.maxMessageSize == 64 * 1024 && configuration.routes[2].rateLimit?.onExceed == .drop)
    }

    @Test func theEmbeddedDefaultIsValid() throws {
        let configuration = try DaemonConfiguration.load(path: nil, environment: [:])
        #expect(configuration.routes.map(\.path) == ["/echo", "/chat/{room}"])
        #expect(configuration.admin.listen.port == 9090)
    }

    @Test(arguments: [
        ("listen: nowhere\nroutes: [{path: /e, handler: echo}]", "listen", "'nowhere'"),
        ("routes: [{path: /e, handler: echo, colour: blue}]", "routes[0].colour", "an unknown key"),
        ("limits: {idle_timeout: soon}\nroutes: [{path: /e, handler: echo}]", "limits.idle_timeout", "'soon'"),
        ("limits: {max_message_size: huge}\nroutes: [{path: /e, handler: echo}]", "limits.max_message_size", "'huge'"),
        ("routes: [{path: /e, handler: teleport}]", "routes[0].handler", "'teleport'"),
        ("routes: [{path: /e, handler: echo, limits: {handshake_timeout: 5s}}]", "routes[0].limits.handshake_timeout", "a per-route handshake_timeout"),
        ("routes: [{path: /e, handler: forward}]", "routes[0].group", "nothing"),
        ("routes: [{path: e, handler: echo}]", "routes[0].path", "'e'"),
        ("routes: [{path: /e, handler: echo}, {path: /e, handler: echo}]", "routes[1].path", "'/e'"),
        ("routes: [{path: /w, handler: webhook}]", "routes[0].webhook", "nothing"),
        ("routes: [{path: /w, handler: webhook, webhook: {url: ftp://x}}]", "routes[0].webhook.url", "'ftp://x'"),
        ("admin: {listen: 0.0.0.0:9090}\nroutes: [{path: /e, handler: echo}]", "admin.listen", "'0.0.0.0:9090'"),
        ("admin: {listen: 0.0.0.0:9090, token: a}\nroutes: [{path: /e, handler: echo}]", "admin.token", "a token of 1 characters"),
        ("admin: {listen: 0.0.0.0:9090, token: '                    '}\nroutes: [{path: /e, handler: echo}]", "admin.token", "a token of 20 characters with whitespace"),
        ("admin: {token: ${MISSING_TOKEN}}\nroutes: [{path: /e, handler: echo}]", "admin.token", "${MISSING_TOKEN}"),
        ("routes: []", "routes", "no routes"),
        ("rate_limit: {burst: 3}\nroutes: [{path: /e, handler: echo}]", "rate_limit.messages_per_second", "nothing"),
    ])
    func refusesBadFilesNamingTheKey(yaml: String, key: String, value: String) {
        expectConfigError(yaml, key: key, value: value)
    }

    @Test func anyTokenOnLoopbackAndAutoAnywhere() throws {
        let loopback = try DaemonConfiguration.parse(yaml: "admin: {token: a}\nroutes: [{path: /e, handler: echo}]", environment: [:])
        #expect(loopback.admin.token == "a")
        let auto = try DaemonConfiguration.parse(yaml: "admin: {listen: 0.0.0.0:9090, token: auto}\nroutes: [{path: /e, handler: echo}]", environment: [:])
        #expect(auto.admin.token == AdminSection.autoToken && auto.admin.resolvedToken()?.count == 32)
    }

    @Test func acceptsUnitsAndDefaults() throws {
        let configuration = try DaemonConfiguration.parse(
            yaml: "limits: {close_timeout: 250ms, outbound_queue_size: 512KiB}\nroutes: [{path: /e, handler: echo}]\nlisten: '[::1]:0'",
            environment: [:])
        #expect(configuration.limits.closeTimeout == .milliseconds(250) && configuration.limits.outboundQueueSize == 512 * 1024)
        #expect(configuration.listen == ListenAddress(host: "::1", port: 0))
        #expect(configuration.admin.token == nil && configuration.log.level == .info)
    }

    @Test func aWebhookThatCannotFitItsRetriesInTheHandshakeIsWarnedAbout() throws {
        let fits = try DaemonConfiguration.parse(
            yaml: "routes: [{path: /w, handler: webhook, webhook: {url: 'http://127.0.0.1:1/', timeout: 2s, retries: 3}}]", environment: [:])
        #expect(fits.warnings.isEmpty)
        let tooLong = try DaemonConfiguration.parse(
            yaml: """
                limits: {handshake_timeout: 5s}
                routes:
                  - {path: /e, handler: echo}
                  - {path: /w, handler: webhook, webhook: {url: 'http://127.0.0.1:1/', timeout: 2s, retries: 3, backoff: 100ms}}
                """,
            environment: [:])
        #expect(tooLong.warnings == [
            "routes[1].webhook.timeout × (1 + routes[1].webhook.retries) with backoff (8.7 s) exceeds limits.handshake_timeout (5 s): "
                + "the open event of /w gets only the attempts that fit in the handshake, and a backend that does not answer refuses clients with 504",
        ])
        let withoutOpen = try DaemonConfiguration.parse(
            yaml: "routes: [{path: /w, handler: webhook, webhook: {url: 'http://127.0.0.1:1/', timeout: 20s, events: [data]}}]", environment: [:])
        #expect(withoutOpen.warnings.isEmpty)
    }
}

/// Expects `yaml` to be refused with an error at `key` about `value`, with a non-empty expectation.
func expectConfigError(_ yaml: String, key: String, value: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try DaemonConfiguration.parse(yaml: yaml, environment: [:])
        Issue.record("expected an error for \(key)", sourceLocation: sourceLocation)
    } catch let error as ConfigError {
        #expect(error.key == key, "\(error)", sourceLocation: sourceLocation)
        #expect(error.value == value, "\(error)", sourceLocation: sourceLocation)
        #expect(!error.expected.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }

}
