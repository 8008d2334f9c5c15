/// A handler that does nothing with its events (the default of an outbound socket).
public struct IgnoringHandler: GatewayHandler {
    /// Creates the handler.
    public init() {}
}
