import GatewayCluster
import GatewayCore
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// `cluster`: several nodes acting as one gateway through PostgreSQL. Without the section a node runs alone.
public struct ClusterSection: Sendable, Decodable {
    /// The settings the node joins with (the URL checked, the node id defaulted).
    public var settings: ClusterSettings

    enum Keys: String, CodingKey, CaseIterable {
        case postgres, schema, heartbeat
        case nodeID = "node_id"
        case nodeTimeout = "node_timeout"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.section(Keys.self)
        let here = decoder.codingPath
        guard let url = try c.text(.postgres) else {
            throw ConfigError(key: keyPath(here + [Keys.postgres]), value: "nothing", expected: "a postgres:// URL of the cluster's database")
        }
        let heartbeat = try c.duration(.heartbeat) ?? .seconds(2)
        let timeout = try c.duration(.nodeTimeout) ?? .seconds(10)
        let nodeID = try c.text(.nodeID) ?? Self.defaultNodeID
        let schema = try c.text(.schema) ?? "wsgate"
        do {
            self.settings = try ClusterSettings(
                url: url, nodeID: nodeID, heartbeat: .nanoseconds(heartbeat.nanoseconds), nodeTimeout: .nanoseconds(timeout.nanoseconds),
                schema: schema)
        } catch {
            let key: Keys
            switch error.setting {
            case .url: key = .postgres
            case .nodeID: key = .nodeID
            case .timing: key = .nodeTimeout
            case .schema: key = .schema
            }
            let value = key == .postgres ? "a URL where \(error.reason)" : "a value where \(error.reason)"
            throw ConfigError(key: keyPath(here + [key]), value: value, expected: Self.expected(key))
        }
    }

    private static func expected(_ key: Keys) -> String {
        switch key {
        case .postgres: return "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require|verify-ca|verify-full]"
        case .nodeTimeout: return "a node_timeout of at least two heartbeats"
        case .schema: return "a lowercase identifier such as wsgate"
        case .nodeID: return "1 to 128 characters"
        case .heartbeat: return "a positive duration"
        }
    }

    /// The host name and the process id: unique on one machine and readable in `GET /v1/nodes`.
    static var defaultNodeID: String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0 ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "node"
        return ClusterSettings.defaultNodeID(hostName: host, processID: getpid())
    }
}
