import NIOCore

/// Whether a route's webhook backend is tried, from the attempts seen so far (a circuit breaker): every connection of
/// the route shares it, so that a backend that keeps failing is found out once instead of by every connection alone.
///
/// - `closed`: attempts go to the backend; `failures` failed attempts in a row open the circuit.
/// - `open`: attempts fail at once until `openFor` has passed since the circuit opened.
/// - `probing`: one attempt (the probe) goes to the backend, the others fail at once; its success closes the
///   circuit, its failure opens it again.
///
/// A pure state machine: the caller passes the time and carries out what it answers (logs, metrics).
struct WebhookCircuit: Sendable {
    enum State: Equatable, Sendable {
        case closed(failuresInARow: Int)
        case open(until: NIODeadline)
        case probing
    }

    /// What an attempt may do.
    enum Permission: Equatable, Sendable {
        /// Go to the backend.
        case attempt
        /// Go to the backend as the probe of an open circuit: report its outcome like any other attempt.
        case probe
        /// Fail at once: the circuit is open (or probing) for at least `retryAfter` more.
        case failFast(retryAfter: TimeAmount)
    }

    /// A change the caller announces (a log line, a metric).
    enum Transition: Equatable, Sendable {
        case none
        /// The backend failed `failuresInARow` attempts in a row (or its probe failed): attempts fail at once.
        case opened(failuresInARow: Int)
        /// A probe succeeded: attempts go to the backend again.
        case closed
    }

    /// Failed attempts in a row that open the circuit; `nil` never opens it.
    let threshold: Int?
    /// How long an open circuit fails attempts before it lets a probe through.
    let openFor: TimeAmount
    private(set) var state = State.closed(failuresInARow: 0)

    init(threshold: Int?, openFor: TimeAmount) {
        self.threshold = threshold
        self.openFor = openFor
    }

    /// Whether an attempt starting at `now` may go to the backend.
    mutating func permission(now: NIODeadline) -> Permission {
        switch self.state {
        case .closed:
            return .attempt
        case .open(let until) where now < until:
            return .failFast(retryAfter: until - now)
        case .open:
            self.state = .probing
            return .probe
        case .probing:
            return .failFast(retryAfter: self.openFor)
        }
    }

    /// An attempt that went to the backend was answered (any status below 500).
    mutating func succeeded() -> Transition {
        let wasProbing = self.state == .probing
        self.state = .closed(failuresInARow: 0)
        return wasProbing ? .closed : .none
    }

    /// An attempt that went to the backend failed at `now` (no connection, a timeout, a 5xx answer).
    mutating func failed(now: NIODeadline) -> Transition {
        switch self.state {
        case .closed(let failures):
            let failures = failures + 1
            guard let threshold = self.threshold, failures >= threshold else {
                self.state = .closed(failuresInARow: failures)
                return .none
            }
            self.state = .open(until: now + self.openFor)
            return .opened(failuresInARow: failures)
        case .probing:
            self.state = .open(until: now + self.openFor)
            return .opened(failuresInARow: 1)
        case .open:
            // An attempt that started before the circuit opened: it is open already.
            return .none
        }
    }
}
