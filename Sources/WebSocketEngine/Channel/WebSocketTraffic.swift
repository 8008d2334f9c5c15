import Synchronization

/// Told of the wire bytes of every connection configured with it (``WebSocketConfiguration/trafficObserver``),
/// on each connection's event loop, as they are read and written: for totals across connections, such as a
/// metrics counter per route.
public protocol WebSocketTrafficObserver: Sendable {
    /// `bytes` were read from the network.
    func received(wireBytes bytes: Int)
    /// `bytes` were written to the network.
    func sent(wireBytes bytes: Int)
}

/// The bytes a connection moved on the wire after its handshake: frames as sent and received, headers, masks,
/// control frames and compression included. Written by the connection's handler on its event loop, read from any
/// thread (``WebSocket/wireBytesReceived``, ``WebSocket/wireBytesSent``), so that a gateway can show what
/// compression saves beside the payload bytes it counts itself.
final class WebSocketTraffic: Sendable {
    private let received = Atomic<Int>(0)
    private let sent = Atomic<Int>(0)
    private let observer: (any WebSocketTrafficObserver)?

    init(observer: (any WebSocketTrafficObserver)?) {
        self.observer = observer
    }

    /// Bytes read from the network so far.
    var bytesReceived: Int { self.received.load(ordering: .relaxed) }

    /// Bytes handed to the network so far (written to the channel; some may still wait in its queue).
    var bytesSent: Int { self.sent.load(ordering: .relaxed) }

    /// Called on the event loop for every read.
    func didReceive(_ bytes: Int) {
        self.received.add(bytes, ordering: .relaxed)
        self.observer?.received(wireBytes: bytes)
    }

    /// Called on the event loop for every frame written.
    func didSend(_ bytes: Int) {
        self.sent.add(bytes, ordering: .relaxed)
        self.observer?.sent(wireBytes: bytes)
    }
}
