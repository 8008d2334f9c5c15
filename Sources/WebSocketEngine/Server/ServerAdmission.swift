import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The server's ``AdmissionStateMachine``, shared by the event loops of its connections (each call takes a lock),
/// the channels it may evict, and where refusals and evictions are reported (``WebSocketServerConfiguration/onEvent``).
final class ServerAdmission: Sendable {
    private struct State {
        var machine: AdmissionStateMachine
        /// Pending connections, which a newcomer may evict.
        var channels: [UInt64: any Channel] = [:]
        var nextID: UInt64 = 0
    }

    let limits: WebSocketAdmissionLimits
    private let state: NIOLockedValueBox<State>
    private let onEvent: (@Sendable (WebSocketServerEvent) -> Void)?
    /// With no limit at all, connections are not counted.
    let isEnabled: Bool
    /// Whether upgraded connections must report their close (``closed(_:)``).
    let countsOpenConnections: Bool
    /// Refused connections draining their input before they close (see ``startLingering()``).
    private let lingering = Atomic<Int>(0)
    /// The most refused connections that linger at once: beyond, they close at once, so that a flood of refused
    /// connections cannot hold descriptors for the linger time each.
    static let maxLingering = 256

    init(limits: WebSocketAdmissionLimits, onEvent: (@Sendable (WebSocketServerEvent) -> Void)?) {
        self.limits = limits
        self.state = NIOLockedValueBox(State(machine: AdmissionStateMachine(limits: limits)))
        self.onEvent = onEvent
        self.isEnabled = limits != .unlimited
        self.countsOpenConnections = limits.maxConnectionsPerAddress != nil
    }

    /// The key of a connection's source: its IP address without the port.
    static func key(of address: SocketAddress?) -> String? {
        address?.ipAddress
    }

    /// `channel` arrived: its id when admitted (end it with ``handshakeEnded(_:upgraded:)``), else why not (reported
    /// to `onEvent`). Admitting it may close the oldest connection still sending its request.
    func arrived(_ channel: any Channel) -> Result<UInt64, WebSocketAdmissionRefusal> {
        guard self.isEnabled else { return .success(0) }
        let address = channel.remoteAddress
        let (id, verdict, evicted) = self.state.withLockedValue { state in
            state.nextID += 1
            let id = state.nextID
            let verdict = state.machine.connectionArrived(id, from: Self.key(of: address), now: .now())
            var evicted: (any Channel)?
            switch verdict {
            case .admit:
                state.channels[id] = channel
            case .admitEvicting(let old, _):
                state.channels[id] = channel
                evicted = state.channels.removeValue(forKey: old)
            case .refuse:
                break
            }
            return (id, verdict, evicted)
        }
        switch verdict {
        case .admit:
            return .success(id)
        case .admitEvicting:
            // Read before closing: a closed channel forgets its addresses, on its own event loop.
            let evictedAddress = evicted?.remoteAddress
            evicted?.close(promise: nil)
            self.onEvent?(.evicted(address: evictedAddress))
            return .success(id)
        case .refuse(let refusal):
            self.onEvent?(.refused(refusal, address: address))
            return .failure(refusal)
        }
    }

    /// An admitted connection's request arrived whole: it is no longer evicted.
    func requestReceived(_ id: UInt64) {
        guard self.isEnabled else { return }
        self.state.withLockedValue { state in
            state.machine.requestReceived(id)
            state.channels[id] = nil
        }
    }

    /// An admitted connection's handshake ended.
    func handshakeEnded(_ id: UInt64, upgraded: Bool) {
        guard self.isEnabled else { return }
        self.state.withLockedValue { state in
            state.machine.handshakeEnded(id, upgraded: upgraded)
            state.channels[id] = nil
        }
    }

    /// Whether a refused connection may linger (its answer may need its input drained to arrive); if so, end it
    /// with ``endLingering()``.
    func startLingering() -> Bool {
        let count = self.lingering.add(1, ordering: .relaxed).newValue
        guard count <= Self.maxLingering else {
            self.lingering.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// A lingering connection closed.
    func endLingering() {
        self.lingering.subtract(1, ordering: .relaxed)
    }

    /// An upgraded connection closed.
    func closed(_ address: SocketAddress?) {
        guard self.isEnabled else { return }
        let key = Self.key(of: address)
        self.state.withLockedValue { $0.machine.connectionClosed(from: key) }
    }
}
