import NIOConcurrencyHelpers
import NIOCore

/// The server's ``AdmissionStateMachine``, shared by the event loops of its connections (each call takes a lock),
/// and where refusals are reported (``WebSocketServerConfiguration/onEvent``).
final class ServerAdmission: Sendable {
    let limits: WebSocketAdmissionLimits
    private let machine: NIOLockedValueBox<AdmissionStateMachine>
    private let onEvent: (@Sendable (WebSocketServerEvent) -> Void)?
    /// With no limit at all, connections are not counted.
    let isEnabled: Bool

    init(limits: WebSocketAdmissionLimits, onEvent: (@Sendable (WebSocketServerEvent) -> Void)?) {
        self.limits = limits
        self.machine = NIOLockedValueBox(AdmissionStateMachine(limits: limits))
        self.onEvent = onEvent
        self.isEnabled = limits != .unlimited
    }

    /// The key of a connection's source: its IP address without the port.
    static func key(of address: SocketAddress?) -> String? {
        address?.ipAddress
    }

    /// A connection arrived: `nil` when admitted (it must be ended with ``handshakeEnded(_:upgraded:)``), else why
    /// not (reported to `onEvent`).
    func arrived(_ address: SocketAddress?) -> WebSocketAdmissionRefusal? {
        guard self.isEnabled else { return nil }
        let key = Self.key(of: address)
        let verdict = self.machine.withLockedValue { $0.connectionArrived(from: key, now: .now()) }
        guard case .refuse(let refusal) = verdict else { return nil }
        self.onEvent?(.refused(refusal, address: address))
        return refusal
    }

    /// An admitted connection's handshake ended.
    func handshakeEnded(_ address: SocketAddress?, upgraded: Bool) {
        guard self.isEnabled else { return }
        let key = Self.key(of: address)
        self.machine.withLockedValue { $0.handshakeEnded(from: key, upgraded: upgraded) }
    }

    /// An upgraded connection closed.
    func closed(_ address: SocketAddress?) {
        guard self.isEnabled else { return }
        let key = Self.key(of: address)
        self.machine.withLockedValue { $0.connectionClosed(from: key) }
    }
}
