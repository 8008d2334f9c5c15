import DequeModule
import NIOCore

/// The counts behind ``WebSocketAdmissionLimits``: connections in their handshake and open ones, per source address
/// and in total, and each address's token bucket of new connections. Pure: the caller passes the time, keys
/// connections by their address without the port (`nil` for a connection with no IP address, which only the total
/// counts) and carries out the verdicts.
///
/// Connections are known by ids the caller gives. Every admitted connection must be ended with
/// ``handshakeEnded(_:upgraded:)`` (which ignores one already evicted) and, if it was upgraded while
/// ``countsOpenConnections``, closed exactly once with ``connectionClosed(from:)``.
///
/// At ``WebSocketAdmissionLimits/maxPendingHandshakes``, a new connection evicts the oldest one still sending its
/// request, if that one has been at it for ``minimumAgeToEvict`` (a slowloris client holds its slot until the
/// handshake timeout, a real one finishes in milliseconds); only when none qualifies is the newcomer refused.
struct AdmissionStateMachine {
    /// What is known about one address.
    struct Entry: Equatable {
        var pending = 0
        var open = 0
        /// Tokens of the rate limit's bucket as of `refilled`.
        var tokens: Double
        var refilled: NIODeadline
    }

    /// What to do with a new connection.
    enum Verdict: Equatable {
        case admit
        /// Admit it and close the connection with this id, whose handshake is no longer counted.
        case admitEvicting(UInt64, address: String?)
        case refuse(WebSocketAdmissionRefusal)
    }

    /// A connection in its handshake.
    struct Pending: Equatable {
        var address: String?
        var arrived: NIODeadline
        /// Whether its request is still arriving (it may be evicted); once whole, the application decides.
        var isReceiving = true
    }

    /// How long a connection must have been sending its request before a newcomer may evict it.
    static let minimumAgeToEvict = TimeAmount.seconds(1)

    let limits: WebSocketAdmissionLimits
    /// Connections in their handshake, by id.
    private(set) var pending: [UInt64: Pending] = [:]
    /// Ids in order of arrival, of which those still in ``pending`` and receiving may be evicted (the others are
    /// dropped lazily).
    private var arrivals: Deque<UInt64> = []
    private(set) var entries: [String: Entry] = [:]

    /// Connections in their handshake, from every address.
    var pendingTotal: Int { self.pending.count }

    /// Whether upgraded connections are counted until they close (``connectionClosed(from:)``): only for
    /// ``WebSocketAdmissionLimits/maxConnectionsPerAddress``.
    var countsOpenConnections: Bool { self.limits.maxConnectionsPerAddress != nil }
    /// The entry count at which addresses that are quiet again are forgotten.
    private var sweepThreshold = Self.minimumSweepThreshold
    static let minimumSweepThreshold = 1024

    init(limits: WebSocketAdmissionLimits) {
        self.limits = limits
    }

    /// Connection `id` arrived from `address` at `now`: admitted (and counted as pending) or refused.
    mutating func connectionArrived(_ id: UInt64, from address: String?, now: NIODeadline) -> Verdict {
        var evicted: UInt64?
        if let limit = self.limits.maxPendingHandshakes, self.pendingTotal >= limit {
            guard let oldest = self.oldestReceiving(), now - self.pending[oldest]!.arrived >= Self.minimumAgeToEvict else {
                return .refuse(.pendingHandshakes)
            }
            evicted = oldest
        }
        if let address {
            if self.entries.count >= self.sweepThreshold { self.sweep(now: now) }
            var entry = self.entries[address] ?? Entry(tokens: Double(self.limits.handshakeRatePerAddress?.burst ?? 0), refilled: now)
            if let rate = self.limits.handshakeRatePerAddress {
                entry.tokens = Self.refilled(entry, rate: rate, now: now)
                entry.refilled = now
            }
            let verdict = self.judge(entry)
            guard verdict == .admit else {
                // Only the bucket's refill is worth remembering of a refused connection.
                if self.limits.handshakeRatePerAddress != nil, self.entries[address] != nil { self.entries[address] = entry }
                return verdict
            }
            if self.limits.handshakeRatePerAddress != nil { entry.tokens -= 1 }
            entry.pending += 1
            self.entries[address] = entry
        }
        self.pending[id] = Pending(address: address, arrived: now)
        self.arrivals.append(id)
        guard let evicted else { return .admit }
        let evictedAddress = self.pending[evicted]?.address
        self.handshakeEnded(evicted, upgraded: false)
        return .admitEvicting(evicted, address: evictedAddress)
    }

    /// Connection `id` sent its whole request: the application decides now, and it is no longer evicted.
    mutating func requestReceived(_ id: UInt64) {
        self.pending[id]?.isReceiving = false
    }

    /// The handshake of connection `id` ended: it was upgraded (and is open from now on) or refused, failed or
    /// timed out (and is gone). Nothing happens for a connection that was evicted.
    mutating func handshakeEnded(_ id: UInt64, upgraded: Bool) {
        guard let ended = self.pending.removeValue(forKey: id) else { return }
        if self.arrivals.count > 2 * self.pending.count + 64 {
            self.arrivals = Deque(self.arrivals.filter { self.pending[$0]?.isReceiving == true })
        }
        guard let address = ended.address, var entry = self.entries[address] else { return }
        entry.pending -= 1
        // Open connections are counted only for the limit that needs them (their closes are reported only then).
        if upgraded, self.countsOpenConnections { entry.open += 1 }
        self.store(entry, for: address)
    }

    /// An upgraded connection from `address` closed.
    mutating func connectionClosed(from address: String?) {
        guard let address, var entry = self.entries[address] else { return }
        entry.open -= 1
        self.store(entry, for: address)
    }

    /// The connection that has been receiving its request the longest.
    private mutating func oldestReceiving() -> UInt64? {
        while let first = self.arrivals.first {
            if self.pending[first]?.isReceiving == true { return first }
            self.arrivals.removeFirst()
        }
        return nil
    }

    private func judge(_ entry: Entry) -> Verdict {
        if let limit = self.limits.maxPendingHandshakesPerAddress, entry.pending >= limit {
            return .refuse(.pendingHandshakesPerAddress)
        }
        if let limit = self.limits.maxConnectionsPerAddress, entry.pending + entry.open >= limit {
            return .refuse(.connectionsPerAddress)
        }
        if self.limits.handshakeRatePerAddress != nil, entry.tokens < 1 {
            return .refuse(.handshakeRate)
        }
        return .admit
    }

    /// Keeps an entry while it counts connections, or while its bucket is still refilling (a sweep forgets it once
    /// full).
    private mutating func store(_ entry: Entry, for address: String) {
        if entry.pending == 0, entry.open == 0, self.limits.handshakeRatePerAddress == nil {
            self.entries[address] = nil
        } else {
            self.entries[address] = entry
        }
    }

    /// Forgets addresses with no connection whose bucket is full again: remembering them changes nothing.
    private mutating func sweep(now: NIODeadline) {
        self.entries = self.entries.filter { _, entry in
            guard entry.pending == 0, entry.open == 0 else { return true }
            guard let rate = self.limits.handshakeRatePerAddress else { return false }
            return Self.refilled(entry, rate: rate, now: now) < Double(rate.burst)
        }
        self.sweepThreshold = max(Self.minimumSweepThreshold, self.entries.count * 2)
    }

    private static func refilled(_ entry: Entry, rate: WebSocketAdmissionLimits.Rate, now: NIODeadline) -> Double {
        let elapsed = Double(max(0, (now - entry.refilled).nanoseconds)) / 1e9
        return min(Double(rate.burst), entry.tokens + elapsed * rate.perSecond)
    }
}
