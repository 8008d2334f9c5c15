import GatewayCore
import Logging

/// `log`.
public struct LogSection: Sendable, Decodable {
    public enum Format: String, Sendable, CaseIterable { case text, json }
    public enum Level: String, Sendable, CaseIterable { case trace, debug, info, notice, warning, error, critical }
    /// `log.connections`: a level for the per-connection open and close lines, or `off`.
    public enum ConnectionLines: String, Sendable, CaseIterable { case trace, debug, info, notice, off }

    public var level = Level.info
    public var format = Format.text
    /// `log.connections` (default `info`).
    public var connections = ConnectionLines.info
    /// `log.connection_sample`: log the open and close of one connection in N (default 1: every one).
    public var connectionSample = 1

    enum Keys: String, CodingKey, CaseIterable {
        case level, format, connections
        case connectionSample = "connection_sample"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        self.level = try c.choice(.level, Level.self) ?? .info
        self.format = try c.choice(.format, Format.self) ?? .text
        self.connections = try c.choice(.connections, ConnectionLines.self) ?? .info
        self.connectionSample = try c.int(.connectionSample, in: 1...1_000_000) ?? 1
    }

    /// The gateway's policy for the per-connection lines.
    var connectionLog: ConnectionLogPolicy {
        ConnectionLogPolicy(level: Logger.Level(rawValue: self.connections.rawValue), sampleOneIn: self.connectionSample)
    }
}
