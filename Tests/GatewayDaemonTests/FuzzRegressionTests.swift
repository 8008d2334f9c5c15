import GatewayCore
import GatewayDaemon
import NIOCore
import Testing

/// Configuration files the fuzz target `config` of `Fuzz/` found to crash the daemon, at load time or later (their
/// reproducers are in `Fuzz/Corpus/config/`).
@Suite("Fuzz regressions: configuration")
struct FuzzRegressionTests {
    /// Durations and sizes too large for `Int64`/`Int` (or infinite) were converted anyway, which traps: a config
    /// file stopped `wsgate check` and `wsgate --config` with a Swift runtime failure instead of an error.
    @Test(arguments: [
        ("limits: {idle_timeout: 1e30h}\nroutes: [{path: /e, handler: echo}]", "limits.idle_timeout", "'1e30h'"),
        ("limits: {close_timeout: 1e300}\nroutes: [{path: /e, handler: echo}]", "limits.close_timeout", "'1e300'"),
        ("limits: {handshake_timeout: 300000000000m}\nroutes: [{path: /e, handler: echo}]", "limits.handshake_timeout", "'300000000000m'"),
        ("limits: {max_message_size: 1e300KiB}\nroutes: [{path: /e, handler: echo}]", "limits.max_message_size", "'1e300KiB'"),
        ("limits: {max_frame_size: infMiB}\nroutes: [{path: /e, handler: echo}]", "limits.max_frame_size", "'infMiB'"),
        ("limits: {outbound_queue_size: 9223372036854775807KB}\nroutes: [{path: /e, handler: echo}]", "limits.outbound_queue_size", "'9223372036854775807KB'"),
    ])
    func hugeDurationsAndSizesAreErrors(yaml: String, key: String, value: String) {
        expectConfigError(yaml, key: key, value: value)
    }

    @Test func theLargestDurationsAndSizesStillLoad() throws {
        let configuration = try DaemonConfiguration.parse(
            yaml: "limits: {idle_timeout: 100000h, max_message_size: 1000000GiB}\nroutes: [{path: /e, handler: echo}]",
            environment: [:])
        #expect(configuration.limits.idleTimeout == .hours(100_000))
        #expect(configuration.limits.maxMessageSize == 1_000_000 << 30)
    }

    /// A rate limit without `burst` took the rate as its burst, converted to `Int` whatever its size.
    @Test func aHugeRateGetsTheLargestDefaultBurst() throws {
        let configuration = try DaemonConfiguration.parse(
            yaml: "rate_limit: {messages_per_second: 1e300}\nroutes: [{path: /e, handler: echo, rate_limit: {messages_per_second: 2.5}}]",
            environment: [:])
        #expect(configuration.rateLimit?.burst == 1_000_000)
        #expect(configuration.routes[0].rateLimit?.burst == 3)
    }

    /// An exponential reconnect with a `max_interval` over half of `Int64.max` nanoseconds (about 146 years) and
    /// jitter computed a wait past `Int64.max` and trapped when the outbound socket lost its connection.
    @Test func reconnectWaitsNearTheLargestDurationAreCapped() throws {
        let configuration = try DaemonConfiguration.parse(
            yaml: """
                outbound:
                  - socket_id: a
                    url: ws://127.0.0.1:9/
                    reconnect: {strategy: exponential, initial_interval: 1s, max_interval: 2000000h, growth: 1e300, jitter: 1}
                routes: [{path: /e, handler: echo}]
                """,
            environment: [:])
        let strategy = configuration.outbound[0].reconnect
        #expect(strategy.delay(beforeRetry: 1, random: { 0.5 }) == .seconds(1))
        #expect(strategy.delay(beforeRetry: 3, random: { 0.999_999 })!.nanoseconds > TimeAmount.hours(2_000_000).nanoseconds)
        #expect(strategy.delay(beforeRetry: 3, random: { 0 }) == .nanoseconds(0))
    }
}
