import Logging
import WebSocketEngine

/// How the per-connection `connection opened` and `connection closed` lines are logged: at which level (or not at
/// all), and for which share of the connections. With thousands of connections a second these two lines are most
/// of a gateway's log; an operator keeps them at `info` for a small deployment and moves them to `debug` or samples
/// them for a busy one. Everything else about a connection (refusals, policy closes, failures) is logged regardless.
public struct ConnectionLogPolicy: Sendable, Hashable {
    /// The level of the lines; `nil` leaves them out.
    public var level: Logger.Level?
    /// Log one connection in this many (both its lines); 1 logs every connection.
    public var sampleOneIn: Int

    /// Creates a policy; the default logs every connection at `info`.
    public init(level: Logger.Level? = .info, sampleOneIn: Int = 1) {
        precondition(sampleOneIn >= 1, "sampleOneIn must be at least 1")
        self.level = level
        self.sampleOneIn = sampleOneIn
    }

    /// The level at which `connection`'s lines are logged, `nil` when they are not. The choice depends only on the
    /// socket id, so a connection whose open was logged has its close logged too. Outbound sockets, few and
    /// opened on purpose, are always logged at `info`.
    func level(for connection: GatewayConnection) -> Logger.Level? {
        if connection.type == .outbound { return .info }
        guard let level = self.level else { return nil }
        guard self.sampleOneIn > 1 else { return level }
        // FNV-1a of the id: stable across calls (Swift's `hashValue` is too, within a process, but costs more).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in connection.id.rawValue.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return hash % UInt64(self.sampleOneIn) == 0 ? level : nil
    }

    /// Logs that `connection` opened, with its subprotocol and negotiated compression.
    func opened(_ connection: GatewayConnection, logger: Logger) {
        guard let level = self.level(for: connection) else { return }
        logger.log(level: level, "connection opened", metadata: Self.openMetadata(connection))
    }

    /// Logs that `connection` closed, with the code and reason of whoever closed it.
    func closed(_ connection: GatewayConnection, info: WebSocketCloseInfo?, logger: Logger) {
        guard let level = self.level(for: connection) else { return }
        // The metadata is built only when the line is logged (`metadata` is an autoclosure).
        logger.log(level: level, "connection closed", metadata: Self.closeMetadata(connection, info))
    }

    static func openMetadata(_ connection: GatewayConnection) -> Logger.Metadata {
        var metadata = connection.logMetadata
        let socket = connection.socket
        metadata["subprotocol"] = "\(socket?.subprotocol ?? "-")"
        metadata["compression"] = "\(socket?.compression?.headerValue ?? "-")"
        return metadata
    }

    static func closeMetadata(_ connection: GatewayConnection, _ info: WebSocketCloseInfo?) -> Logger.Metadata {
        var metadata = connection.logMetadata
        metadata["close_code"] = "\(info?.code.rawValue ?? WebSocketCloseCode.abnormalClosure.rawValue)"
        metadata["close_reason"] = "\(info?.reason ?? "never connected")"
        // The code and reason are the closer's: the gateway's own (a kick, a limit) even when the peer never answered.
        metadata["closed_by"] = "\(info.map { $0.initiatedLocally ? "gateway" : "peer" } ?? "gateway")"
        if let socket = connection.socket {
            metadata["wire_bytes_in"] = "\(socket.wireBytesReceived)"
            metadata["wire_bytes_out"] = "\(socket.wireBytesSent)"
        }
        return metadata
    }
}
