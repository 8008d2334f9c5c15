/// Entry points into GatewayCore's internal parsers for the libFuzzer targets of the `Fuzz/` package
/// (`@_spi(Fuzzing) import GatewayCore`). Not API: they may change with the internals they reach.
@_spi(Fuzzing)
public enum CoreFuzzingHooks {
    /// A bridge's correlation key of a message (`correlation_field`): the top-level JSON field `name` as text, or
    /// `nil` when `bytes` are not a JSON object with that field.
    public static func jsonField(_ name: String, in bytes: [UInt8]) -> String? {
        MessageCodec.jsonField(name, in: bytes)
    }
}
