import NIOCore

/// The counts behind ``WebSocketAdmissionLimits``: connections in their handshake and open ones, per source address
/// and in total, and each address's token bucket of new connections. Pure: the caller passes the time, keys
/// connections by their address without the port (`nil` for a connection with no IP address, which only the total
/// counts) and carries out the verdicts.
///
/// Every admitted connection must be ended exactly once with ``handshakeEnded(from:upgraded:)`` and, if it was
/// upgraded, closed exactly once with ``connectionClosed(from:)``.
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
        case refuse(WebSocketAdmissionRefusal)
    }

    let limits: WebSocketAdmissionLimits
    /// Connections in their handshake, from every address.
    private(set) var pendingTotal = 0
    private(set) var entries: [String: Entry] = [:]
    /// The entry count at which addresses that are quiet again are forgotten.
    private var sweepThreshold = Self.minimumSweepThreshold
    static let minimumSweepThreshold = 1024

    init(limits: WebSocketAdmissionLimits) {
        self.limits = limits
    }

    /// A connection arrived from `address` at `now`: admitted (and counted as pending) or refused.
    mutating func connectionArrived(from address: String?, now: NIODeadline) -> Verdict {
        if let limit = self.limits.maxPendingHandshakes, self.pendingTotal >= limit {
            return .refuse(.pendingHandshakes)
        }
        guard let address else {
            self.pendingTotal += 1
            return .admit
        }
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
        self.pendingTotal += 1
        self.entries[address] = entry
        return .admit
    }

    /// The handshake of a connection admitted from `address` ended: it was upgraded (and is open from now on) or
    /// refused, failed or timed out (and is gone).
    mutating func handshakeEnded(from address: String?, upgraded: Bool) {
        self.pendingTotal -= 1
        guard let address, var entry = self.entries[address] else { return }
        entry.pending -= 1
        if upgraded { entry.open += 1 }
        self.store(entry, for: address)
    }

    /// An upgraded connection from `address` closed.
    mutating func connectionClosed(from address: String?) {
        guard let address, var entry = self.entries[address] else { return }
        entry.open -= 1
        self.store(entry, for: address)
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
