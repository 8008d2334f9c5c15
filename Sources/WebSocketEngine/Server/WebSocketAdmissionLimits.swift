import NIOCore
import NIOHTTP1

/// Limits on connections before they are WebSocket connections, counted per source address and in total. They
/// keep one address (or a botnet of slow clients) from holding every descriptor: a new TCP connection over a limit
/// is answered at once (503 or 429 with `Retry-After`, no TLS handshake is waited for) and closed, and the server
/// reports it as ``WebSocketServerEvent/refused(_:address:)``.
///
/// A connection is *pending* from its accept until its upgrade is accepted or refused (at the latest at the
/// handshake timeout); it is *open* from then until it closes. Addresses are compared without their port, so a
/// client behind a NAT shares its limits with its neighbours: raise the per-address limits where many clients come
/// from one address.
public struct WebSocketAdmissionLimits: Sendable, Hashable {
    /// The most connections still in their opening handshake, in total (default 1,024). Beyond it a new connection
    /// evicts the oldest one that has been sending its request for a second or more (slowloris), else gets 503.
    public var maxPendingHandshakes: Int?
    /// The most connections still in their opening handshake from one address (default 32); more get 429.
    public var maxPendingHandshakesPerAddress: Int?
    /// The most connections, pending and open, from one address (default: no limit); more get 429.
    public var maxConnectionsPerAddress: Int?
    /// New connections per second from one address, as a token bucket (default: no limit); more get 429.
    public var handshakeRatePerAddress: Rate?

    /// A rate: `perSecond` on average, up to `burst` at once.
    public struct Rate: Sendable, Hashable {
        /// The sustained rate.
        public var perSecond: Double
        /// How many may come at once after a quiet period.
        public var burst: Int

        /// Creates a rate.
        public init(perSecond: Double, burst: Int) {
            self.perSecond = perSecond
            self.burst = burst
        }
    }

    /// Creates limits; every `nil` is no limit.
    public init(
        maxPendingHandshakes: Int? = 1024,
        maxPendingHandshakesPerAddress: Int? = 32,
        maxConnectionsPerAddress: Int? = nil,
        handshakeRatePerAddress: Rate? = nil
    ) {
        self.maxPendingHandshakes = maxPendingHandshakes
        self.maxPendingHandshakesPerAddress = maxPendingHandshakesPerAddress
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.handshakeRatePerAddress = handshakeRatePerAddress
    }

    /// No limits at all.
    public static let unlimited = WebSocketAdmissionLimits(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: nil)
}

/// Why a new connection was refused before its handshake.
public enum WebSocketAdmissionRefusal: String, Error, Sendable, Hashable, CaseIterable {
    /// ``WebSocketAdmissionLimits/maxPendingHandshakes`` reached (503).
    case pendingHandshakes = "pending_handshakes"
    /// ``WebSocketAdmissionLimits/maxPendingHandshakesPerAddress`` reached (429).
    case pendingHandshakesPerAddress = "pending_handshakes_per_address"
    /// ``WebSocketAdmissionLimits/maxConnectionsPerAddress`` reached (429).
    case connectionsPerAddress = "connections_per_address"
    /// ``WebSocketAdmissionLimits/handshakeRatePerAddress`` exceeded (429).
    case handshakeRate = "handshake_rate"

    /// The answer's status: 503 when the server as a whole is busy, 429 when one address asks too much.
    public var status: HTTPResponseStatus {
        self == .pendingHandshakes ? .serviceUnavailable : .tooManyRequests
    }

    /// Seconds after which a retry may succeed.
    public var retryAfterSeconds: Int {
        self == .handshakeRate ? 1 : 5
    }

    /// The answer's one-line reason.
    public func reason(_ limits: WebSocketAdmissionLimits) -> String {
        switch self {
        case .pendingHandshakes:
            return "too many handshakes in progress (\(limits.maxPendingHandshakes ?? 0))"
        case .pendingHandshakesPerAddress:
            return "too many handshakes in progress from this address (\(limits.maxPendingHandshakesPerAddress ?? 0))"
        case .connectionsPerAddress:
            return "too many connections from this address (\(limits.maxConnectionsPerAddress ?? 0))"
        case .handshakeRate:
            return "too many new connections from this address (\(limits.handshakeRatePerAddress?.perSecond ?? 0) per second)"
        }
    }
}

/// What a ``WebSocketServer`` reports about its listener, for logs and metrics
/// (``WebSocketServerConfiguration/onEvent``).
public enum WebSocketServerEvent: Sendable {
    /// A new connection was refused by an admission limit, before its handshake.
    case refused(WebSocketAdmissionRefusal, address: SocketAddress?)
    /// At ``WebSocketAdmissionLimits/maxPendingHandshakes``, the connection that had been sending its request the
    /// longest was closed to admit a new one.
    case evicted(address: SocketAddress?)
    /// Accepting failed with a resource error (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): the listener stops
    /// accepting for `pause` (doubling while it keeps failing, at most a second) instead of retrying at once.
    case acceptFailed(errno: CInt, pause: TimeAmount)
    /// The server refused an upgrade request itself, before any decision of the application: malformed (400),
    /// another method (405), not an upgrade (426), headers too large (431), another HTTP version (505), not whole
    /// within the handshake timeout (408), or not decided within it (503).
    case rejected(status: HTTPResponseStatus, reason: String, address: SocketAddress?)
    /// A connection to a TLS listener failed before its request arrived: its TLS handshake failed (a plain-text
    /// client, an unknown certificate authority, no common protocol version), or it broke off during it.
    case tlsFailed(reason: String, address: SocketAddress?)
}
