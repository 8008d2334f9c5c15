import Foundation
import GatewayCore
import GatewayDaemon
import NIOCore
import Testing

@Suite("Daemon configuration: outbound sockets, bridges and codecs")
struct OutboundConfigurationTests {
    static var root: URL {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }

    @Test func readsTheConnectorExample() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("examples/connector.yaml"), encoding: .utf8)
        let configuration = try DaemonConfiguration.parse(yaml: text, environment: [:])
        #expect(configuration.outboundDefaults.baseURL == "ws://127.0.0.1:9000" && configuration.outboundDefaults.allowedHosts == ["127.0.0.1"])
        #expect(configuration.outbound.map(\.socketID) == ["upstream-echo", "upstream-news"])
        #expect(configuration.outbound[0].reconnect == .exponential(
            initialInterval: .milliseconds(250), growth: 2, maxInterval: .seconds(5), maxRetries: 1000, jitter: 0.2))
        #expect(configuration.outbound[1].reconnect == .forever(interval: .seconds(1)))
        #expect(configuration.outbound[1].handler.name == "forward" && configuration.outbound[1].handler.group == "live")
        #expect(configuration.outbound[1].pathParameters == ["room": "news"])
        #expect(configuration.routes[0].handler.bridge?.outbound == "upstream-echo" && configuration.routes[0].handler.bridge?.timeout == .seconds(30))
    }

    @Test func readsEveryOutboundKey() throws {
        let configuration = try DaemonConfiguration.parse(yaml: """
            outbound:
              - socket_id: up
                url: wss://upstream.example.com/feed/{id}
                headers: {X-A: "1"}
                query: {v: "2"}
                path_parameters: {id: "7"}
                groups: [g]
                attributes: {k: v}
                subprotocols: [feed.v1]
                reconnect: {strategy: fixed, interval: 2s, count: 5}
                queue: {size: 0, when_full: drop_oldest}
                codec: binary
                preprocessors: [base64]
                postprocessors: [base64, lines]
                tls: {server_name: upstream.internal, insecure: true}
                proxy: {url: "http://proxy.internal:3128", username: u, password: p, no_proxy: [.internal]}
                max_redirects: 3
                auth: {type: bearer, token: t}
                cookies: {session: abc}
                handshake_timeout: 3s
                idle_timeout: 1m
                idle_action: close
                max_message_size: 64KiB
                compression: true
            routes: [{path: /e, handler: echo, codec: string, preprocessors: [lines]}]
            """, environment: [:])
        let up = configuration.outbound[0]
        #expect(up.url == "wss://upstream.example.com/feed/{id}" && up.headers == ["X-A": "1"] && up.query == ["v": "2"])
        #expect(up.reconnect == .fixed(interval: .seconds(2), count: 5) && up.queue == ReconnectQueuePolicy(size: 0, whenFull: .dropOldest))
        #expect(up.codec == MessageCodec(format: .binary, preprocessors: [.base64], postprocessors: [.base64, .lines]))
        #expect(up.tls?.serverName == "upstream.internal" && up.tls?.insecure == true)
        #expect(up.maxRedirects == 3 && up.cookies == ["session": "abc"] && up.handshakeTimeout == .seconds(3))
        #expect(up.idleTimeout == .minutes(1) && up.idleAction == .close && up.maxMessageSize == 64 * 1024 && up.compression)
        #expect(configuration.routes[0].codec == MessageCodec(format: .string, preprocessors: [.lines]))
    }

    @Test(arguments: [
        ("outbound: [{url: ws://h/x}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].socket_id", "nothing"),
        ("outbound: [{socket_id: 'a b', url: ws://h/x}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].socket_id", "'a b'"),
        ("outbound: [{socket_id: a}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].url", "nothing"),
        ("outbound: [{socket_id: a, url: ws://h/x}, {socket_id: a, url: ws://h/y}]\nroutes: [{path: /e, handler: echo}]", "outbound[1].socket_id", "'a'"),
        ("outbound: [{socket_id: a, url: ws://h/x, reconnect: {strategy: sometimes}}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].reconnect.strategy", "'sometimes'"),
        ("outbound: [{socket_id: a, url: ws://h/x, reconnect: {strategy: fixed, interval: 1ms}}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].reconnect.interval", "'1ms'"),
        ("outbound: [{socket_id: a, url: ws://h/x, reconnect: {strategy: exponential, jitter: 2}}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].reconnect.jitter", "'2'"),
        ("outbound: [{socket_id: a, url: ws://h/x, queue: {when_full: panic}}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].queue.when_full", "'panic'"),
        ("outbound: [{socket_id: a, url: ws://h/x, handler: {type: forward}}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].handler.group", "nothing"),
        ("outbound: [{socket_id: a, url: ws://h/x, handler: teleport}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].handler", "'teleport'"),
        ("outbound: [{socket_id: a, url: ws://h/x, preprocessors: [lines]}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].codec", "nothing"),
        ("outbound: [{socket_id: a, url: ws://h/x, codec: xml}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].codec", "'xml'"),
        ("outbound: [{socket_id: a, url: ws://h/x, codec: json, preprocessors: [gzip]}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].preprocessors[0]", "'gzip'"),
        ("outbound: [{socket_id: a, url: ws://h/x, auth: {type: bearer}}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].auth.token", "nothing"),
        ("outbound: [{socket_id: a, url: ws://h/x, tls: {certificate: c.pem}}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].tls.private_key", "nothing"),
        ("outbound: [{socket_id: a, url: ws://h/x, proxy: {url: 'ftp://p'}}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].proxy.url", "'ftp://p'"),
        ("outbound_defaults: {base_url: http://h}\nroutes: [{path: /e, handler: echo}]", "outbound_defaults.base_url", "'http://h'"),
        ("routes: [{path: /b, handler: bridge}]", "routes[0].bridge", "nothing"),
        ("routes: [{path: /b, handler: bridge, bridge: {outbound: nowhere}}]", "routes[0].bridge.outbound", "'nowhere'"),
        ("outbound: [{socket_id: a, url: ws://h/x, handler: {type: forward, group: g}}]\nroutes: [{path: /b, handler: bridge, bridge: {outbound: a}}]", "outbound[0].handler", "'forward'"),
        ("outbound: [{socket_id: a, url: ws://h/x, handler: bridge}]\nroutes: [{path: /e, handler: echo}]", "outbound[0].handler", "'bridge'"),
    ])
    func refusesBadOutboundSettingsNamingTheKey(yaml: String, key: String, value: String) {
        expectConfigError(yaml, key: key, value: value)
    }
}
