import Foundation
import GatewayCore

extension DaemonConfiguration {
    /// Loads a configuration file (or the embedded default when `path` is nil), expanding `${VAR}` from the
    /// process environment.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DaemonConfiguration {
        guard let path else {
            return try Self.parse(yaml: DefaultConfiguration.yaml, environment: environment)
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(key: "--config", value: "'\(path)' (\(error.localizedDescription))", expected: "a readable YAML file")
        }
        return try Self.parse(yaml: text, environment: environment)
    }
}
