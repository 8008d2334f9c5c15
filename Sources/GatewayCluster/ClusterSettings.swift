import FoundationEssentials
import NIOSSL
import PostgresNIO

/// How a node joins the cluster: the database, its own id and the timing of membership.
public struct ClusterSettings: Sendable {
    /// The database, as a `postgres://` URL (see ``init(url:nodeID:heartbeat:nodeTimeout:schema:)``).
    public var postgres: PostgresClient.Configuration
    /// The URL without its password, for logs.
    public var displayURL: String
    /// This node's id, unique in the cluster.
    public var nodeID: String
    /// Time between heartbeats (default 2 s).
    public var heartbeat: Duration
    /// How long after its last heartbeat a node counts as lost (default 10 s).
    public var nodeTimeout: Duration
    /// The PostgreSQL schema that holds the cluster's tables (default `wsgate`): several clusters can share a
    /// database under different schemas.
    public var schema: String

    /// Why a cluster setting is wrong, and which.
    public struct Invalid: Error, Sendable, Hashable, CustomStringConvertible {
        /// The settings.
        public enum Setting: Sendable, Hashable {
            case url, nodeID, timing, schema
        }

        /// Which setting is wrong.
        public var setting: Setting
        /// What is wrong, in a few words.
        public var reason: String
        public var description: String { self.reason }

        init(_ setting: Setting = .url, reason: String) {
            self.setting = setting
            self.reason = reason
        }
    }

    /// Settings for the database at `url`:
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require|verify-full&sslrootcert=FILE]`.
    /// `sslmode` works as libpq's: `require` encrypts without checking the server's certificate, `verify-full`
    /// checks it against `sslrootcert` (or the system's CAs) and the host name; the default is `prefer`.
    public init(
        url: String, nodeID: String, heartbeat: Duration = .seconds(2), nodeTimeout: Duration = .seconds(10), schema: String = "wsgate"
    ) throws(Invalid) {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
            throw Invalid(reason: "not a postgres:// URL")
        }
        guard let host = components.host, !host.isEmpty else { throw Invalid(reason: "the URL has no host") }
        guard let user = components.user, !user.isEmpty else { throw Invalid(reason: "the URL has no user name") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw Invalid(reason: "the URL has no database (postgres://user@host/DATABASE)") }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }) { _, last in last }
        let tls = try Self.tls(mode: query["sslmode"] ?? "prefer", rootCertificate: query["sslrootcert"])
        self.postgres = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user,
            password: components.password, database: database, tls: tls)
        self.postgres.options.connectTimeout = .seconds(3)
        self.postgres.options.maximumConnections = 8
        var shown = components
        if shown.password != nil { shown.password = "***" }
        self.displayURL = shown.string ?? url
        guard heartbeat > .zero, nodeTimeout >= heartbeat * 2 else {
            throw Invalid(.timing, reason: "the node timeout must be at least two heartbeats")
        }
        guard Self.isIdentifier(schema) else { throw Invalid(.schema, reason: "the schema must be a lowercase identifier ([a-z_][a-z0-9_]*)") }
        guard !nodeID.isEmpty, nodeID.utf8.count <= 128 else { throw Invalid(.nodeID, reason: "the node id must be 1 to 128 characters") }
        self.nodeID = nodeID
        self.heartbeat = heartbeat
        self.nodeTimeout = nodeTimeout
        self.schema = schema
    }

    private static func tls(mode: String, rootCertificate: String?) throws(Invalid) -> PostgresClient.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let rootCertificate { tls.trustRoots = .file(rootCertificate) }
        switch mode {
        case "disable":
            return .disable
        case "prefer", "allow":
            tls.certificateVerification = .none
            return .prefer(tls)
        case "require":
            tls.certificateVerification = .none
            return .require(tls)
        case "verify-ca":
            tls.certificateVerification = .noHostnameVerification
            return .require(tls)
        case "verify-full":
            return .require(tls)
        default:
            throw Invalid(reason: "sslmode '\(mode)' is not one of disable, prefer, require, verify-ca, verify-full")
        }
    }

    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.utf8.first, first == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first),
            text.utf8.count <= 48
        else { return false }
        return text.utf8.allSatisfy { $0 == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// A default node id: the host name and the process id (unique on one machine, readable in `GET /v1/nodes`).
    public static func defaultNodeID(hostName: String, processID: Int32) -> String {
        let host = hostName.split(separator: ".").first.map(String.init) ?? "node"
        return "\(host.isEmpty ? "node" : host)-\(processID)"
    }
}
