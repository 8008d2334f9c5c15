import Synchronization

/// A bound on the bytes waiting in the outbound queues of many connections together (a gateway's), beside each
/// connection's own ``WebSocketConfiguration/outboundQueueSize``: with 10,000 connections of 1 MiB queues, the
/// per-connection bound alone allows 10 GiB.
///
/// Connections that share a budget (``WebSocketConfiguration/outboundBudget``) report what their queue holds after
/// each flush and as it drains. Once the total reaches ``limit``, a connection that already has bytes waiting is
/// full (``WebSocketError/outboundQueueFull(limit:)``, the slow-consumer path), while one whose queue is empty still
/// sends: the bound falls on the connections that hold memory, not on the ones that keep up. It applies to
/// connections whose sends fail when full (``WebSocketConfiguration/OutboundBackpressure/fail``, as a gateway's).
public final class WebSocketOutboundBudget: Sendable {
    /// The most bytes the connections' queues may hold together.
    public let limit: Int
    private let used = Atomic<Int>(0)

    /// Creates a budget of `limit` bytes.
    public init(limit: Int) {
        precondition(limit > 0, "an outbound budget must be positive")
        self.limit = limit
    }

    /// The bytes waiting in the queues of the connections sharing this budget, as last reported.
    public var queuedBytes: Int { self.used.load(ordering: .relaxed) }

    /// Whether the queues hold ``limit`` bytes or more.
    var isExhausted: Bool { self.queuedBytes >= self.limit }

    /// A connection's queue grew (or shrank, for a negative `delta`).
    func add(_ delta: Int) {
        self.used.wrappingAdd(delta, ordering: .relaxed)
    }
}
