import Metrics
import NIOConcurrencyHelpers
import WebSocketEngine

/// The gateway's metrics through swift-metrics (any backend; the daemon uses Prometheus). Counters of one
/// route are created once, so the per-message path only increments them.
final class RouteMetrics: WebSocketTrafficObserver {
    let open: Meter
    let messagesIn: Counter
    let messagesOut: Counter
    let bytesIn: Counter
    let bytesOut: Counter
    /// `wsgate_wire_bytes_total`: frames as they crossed the network (after compression, with headers and
    /// control frames), beside `wsgate_bytes_total`'s message payloads.
    private let wireIn: Counter
    private let wireOut: Counter
    let route: String
    private let acceptedTotal: Counter
    /// `wsgate_closes_total` per close code, made on first use (a counter made per close would look its
    /// dimensions up in the metrics backend every time).
    private let closes = NIOLockedValueBox<[UInt16: Counter]>([:])

    init(route: String) {
        self.route = route
        self.acceptedTotal = Counter(
            label: "wsgate_connections_total", dimensions: [("route", route), ("result", "accepted"), ("reason", "101")])
        self.open = Meter(label: "wsgate_connections_open", dimensions: [("route", route)])
        self.messagesIn = Counter(label: "wsgate_messages_total", dimensions: [("route", route), ("direction", "in")])
        self.messagesOut = Counter(label: "wsgate_messages_total", dimensions: [("route", route), ("direction", "out")])
        self.bytesIn = Counter(label: "wsgate_bytes_total", dimensions: [("route", route), ("direction", "in")])
        self.bytesOut = Counter(label: "wsgate_bytes_total", dimensions: [("route", route), ("direction", "out")])
        self.wireIn = Counter(label: "wsgate_wire_bytes_total", dimensions: [("route", route), ("direction", "in")])
        self.wireOut = Counter(label: "wsgate_wire_bytes_total", dimensions: [("route", route), ("direction", "out")])
    }

    func received(wireBytes bytes: Int) {
        self.wireIn.increment(by: bytes)
    }

    func sent(wireBytes bytes: Int) {
        self.wireOut.increment(by: bytes)
    }

    func accepted() {
        self.acceptedTotal.increment()
        self.open.increment()
    }

    func closed(code: UInt16) {
        self.open.decrement()
        self.closes.withLockedValue { counters in
            if let counter = counters[code] { return counter }
            let counter = Counter(label: "wsgate_closes_total", dimensions: [("route", self.route), ("code", String(code))])
            counters[code] = counter
            return counter
        }.increment()
    }

    static func refused(route: String, reason: String) {
        Counter(label: "wsgate_connections_total", dimensions: [("route", route), ("result", "refused"), ("reason", reason)]).increment()
    }

    func rateLimited(_ action: RateLimit.Action) {
        Counter(label: "wsgate_rate_limited_total", dimensions: [("route", self.route), ("action", action.rawValue)]).increment()
    }

    func slowConsumer(_ policy: SlowConsumerPolicy) {
        Counter(label: "wsgate_slow_consumers_total", dimensions: [("route", self.route), ("action", policy.rawValue)]).increment()
    }

    static func broadcast(delivered: Int, failures: [BroadcastFailure]) {
        Counter(label: "wsgate_broadcast_deliveries_total").increment(by: delivered)
        for failure in failures {
            Counter(label: "wsgate_broadcast_failures_total", dimensions: [("reason", failure.reason.rawValue)]).increment()
        }
    }
}
