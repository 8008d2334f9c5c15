#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// The process's open-file limit against what the configuration may need: every connection is a descriptor, and
/// running out makes accepts fail (the listener then pauses, see `wsgate_accept_errors_total`).
///
/// At start the soft limit is raised to the hard limit (as Go's runtime and nginx's `worker_rlimit_nofile` do), and
/// a warning names the keys to change when `limits.max_connections` plus the outbound sockets plus headroom still
/// exceed it.
enum DescriptorLimit {
    /// Descriptors that are not connections: listeners, the management API's connections, webhook and outbound
    /// clients' pools, log files, the event loops' own.
    static let headroom = 256

    /// The soft limit, after raising it to the hard one where that is allowed.
    static func raiseSoftLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(Self.resource, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            // macOS refuses more than OPEN_MAX whatever the hard limit says; Linux takes the hard limit.
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Self.resource, &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// Raises the soft limit and warns when `needed` connections plus ``headroom`` do not fit; returns the limit.
    @discardableResult
    static func check(connections needed: Int, logger: Logger) -> Int? {
        guard let available = Self.raiseSoftLimit() else { return nil }
        if needed + Self.headroom > available {
            logger.warning(
                "the open-file limit may run out before the connection limits do",
                metadata: [
                    "open_file_limit": "\(available)", "max_connections": "\(needed)", "headroom": "\(Self.headroom)",
                    "fix": "raise the limit (ulimit -n, LimitNOFILE= in a systemd unit) or lower limits.max_connections",
                ])
        }
        return available
    }

    #if os(Linux)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}
