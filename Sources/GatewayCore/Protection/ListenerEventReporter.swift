#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import WebSocketEngine

/// Turns the listener's events (connections refused by an admission limit or by the server, accept errors) and
/// refused upgrades into metrics and log lines. Every event is counted; the log says each kind at most once per
/// throttle interval (``LogThrottle``), with how many it left out, so that an attack cannot flood the log.
///
/// Metrics: `wsgate_connections_total{route,result="refused",reason}` per refusal (the reasons of
/// ``WebSocketAdmissionRefusal``, or the HTTP status of a refused request), `wsgate_accept_errors_total{error}` per
/// failed accept (`EMFILE`, ...).
final class ListenerEventReporter: Sendable {
    private let logger: Logger
    private let limits: WebSocketAdmissionLimits
    private let throttle: LogThrottle

    init(logger: Logger, limits: WebSocketAdmissionLimits, throttle: LogThrottle) {
        self.logger = logger
        self.limits = limits
        self.throttle = throttle
    }

    /// The daemon's configuration key of an admission limit, named in the log.
    static func configurationKey(_ refusal: WebSocketAdmissionRefusal) -> String {
        switch refusal {
        case .pendingHandshakes: return "max_pending_handshakes"
        case .pendingHandshakesPerAddress: return "max_pending_handshakes_per_address"
        case .connectionsPerAddress: return "max_connections_per_address"
        case .handshakeRate: return "handshake_rate_per_address"
        }
    }

    func report(_ event: WebSocketServerEvent) {
        switch event {
        case .refused(let refusal, let address):
            RouteMetrics.refused(route: "", reason: refusal.rawValue)
            self.log(kind: refusal.rawValue, level: .warning) { skipped in
                "connection from \(address?.ipAddress ?? "?") refused before its handshake: \(refusal.reason(self.limits))"
                    + " (limits.\(Self.configurationKey(refusal)))"
                    + (skipped > 0 ? " (\(skipped) more refused for this reason since the last report)" : "")
            }
        case .evicted(let address):
            RouteMetrics.refused(route: "", reason: "evicted_slow_handshake")
            self.log(kind: "evicted", level: .warning) { skipped in
                "connection from \(address?.ipAddress ?? "?") closed after sending part of its request for over a second:"
                    + " \(self.limits.maxPendingHandshakes ?? 0) handshakes were in progress (limits.max_pending_handshakes)"
                    + (skipped > 0 ? " (\(skipped) more since the last report)" : "")
            }
        case .tlsFailed(let reason, let address):
            Counter(label: "wsgate_tls_failures_total").increment()
            self.log(kind: "tls", level: .info) { skipped in
                "TLS handshake from \(address?.ipAddress ?? "?") failed: \(reason)"
                    + (skipped > 0 ? " (\(skipped) more failed since the last report)" : "")
            }
        case .rejected(let status, let reason, let address):
            self.upgradeRefused(status: status, reason: reason, route: "", path: nil, address: address)
        case .acceptFailed(let errno, let pause):
            let name = Self.errnoName(errno)
            Counter(label: "wsgate_accept_errors_total", dimensions: [("error", name)]).increment()
            self.log(kind: name, level: .error) { skipped in
                "accepting connections failed with \(name)"
                    + (name == "EMFILE" || name == "ENFILE" ? " (out of file descriptors: raise `ulimit -n` or lower limits.max_connections)" : "")
                    + "; accepts paused for \(pause.nanoseconds / 1_000_000) ms"
                    + (skipped > 0 ? " (\(skipped) more failures since the last report)" : "")
            }
        }
    }

    /// An upgrade refused with `status` (by the server, a route's checks or its upgrade hook): counted for `route`
    /// (`""` before a route is known), and logged at most once per status and route per throttle interval.
    func upgradeRefused(status: HTTPResponseStatus, reason: String, route: String, path: String?, address: SocketAddress?) {
        RouteMetrics.refused(route: route, reason: String(status.code))
        self.log(kind: "\(status.code) \(route)", level: .info) { skipped in
            "upgrade request from \(address?.ipAddress ?? "?")\(path.map { " for \($0)" } ?? "") refused: \(status.code) \(reason)"
                + (skipped > 0 ? " (\(skipped) more refused with \(status.code) since the last report)" : "")
        }
    }

    private func log(kind: String, level: Logger.Level, message: (Int) -> String) {
        guard let skipped = self.throttle.admit(kind) else { return }
        self.logger.log(level: level, "\(message(skipped))")
    }

    static func errnoName(_ errno: CInt) -> String {
        switch errno {
        case EMFILE: return "EMFILE"
        case ENFILE: return "ENFILE"
        case ENOBUFS: return "ENOBUFS"
        case ENOMEM: return "ENOMEM"
        default: return "errno \(errno)"
        }
    }
}
