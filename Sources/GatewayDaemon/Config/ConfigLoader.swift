import Foundation
import GatewayCore

extension DaemonConfiguration {
    /// Loads a configuration file (or the embedded default when `path` is nil), expanding `${VAR}` from the
    /// process environment, and checks the TLS files it names; throws the first error.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DaemonConfiguration {
        guard let path else {
            return try Self.parse(yaml: DefaultConfiguration.yaml, environment: environment)
        }
        let configuration = try Self.parse(yaml: try Self.read(path), environment: environment)
        if let error = configuration.fileErrors().first { throw error }
        return configuration
    }

    static func read(_ path: String) throws(ConfigError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(key: "--config", value: "'\(path)' (\(error.localizedDescription))", expected: "a readable YAML file")
        }
    }
}
