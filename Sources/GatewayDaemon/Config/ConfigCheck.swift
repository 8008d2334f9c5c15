import FoundationEssentials
import GatewayCore
import WebSocketEngine
import X509

/// What `wsgate check` found in a file: every error (not only the first), and the configuration when there were
/// none.
public struct ConfigCheck: Sendable {
    /// The configuration, when the file has no error.
    public var configuration: DaemonConfiguration?
    /// Every error, in the order of the file.
    public var errors: [ConfigError]
}

extension DaemonConfiguration {
    /// Reads `yaml` as ``parse(yaml:environment:)`` does but reports every error: a wrong value is recorded and read
    /// as absent, an entry of `routes` or `outbound` with errors is left out and the next one read. Then checks the
    /// files the configuration names (``fileErrors(now:)``).
    public static func check(yaml: String, environment: [String: String], now: Date = Date()) -> ConfigCheck {
        let collector = ConfigErrorCollector()
        var configuration: DaemonConfiguration?
        ConfigErrorCollector.$current.withValue(collector) {
            do {
                configuration = try Self.parse(yaml: yaml, environment: environment)
            } catch let error as ConfigError {
                collector.record(error)
            } catch {
                collector.record(ConfigError(key: "", value: "an unreadable file (\(error))", expected: "a YAML mapping of settings"))
            }
        }
        var errors = collector.errors
        if let configuration { errors += configuration.fileErrors(now: now) }
        return ConfigCheck(configuration: errors.isEmpty ? configuration : nil, errors: errors)
    }

    /// Reads and checks a file (or the embedded default when `path` is nil); see ``check(yaml:environment:now:)``.
    public static func check(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> ConfigCheck {
        guard let path else { return Self.check(yaml: DefaultConfiguration.yaml, environment: environment) }
        do {
            return Self.check(yaml: try Self.read(path), environment: environment)
        } catch {
            return ConfigCheck(configuration: nil, errors: [error])
        }
    }

    /// The problems of the TLS files the configuration names (`tls`, `outbound[].tls`): a missing or unreadable
    /// file, a certificate that has expired or is not yet valid, a key that is not the certificate's. Each error
    /// names the key and the file.
    public func fileErrors(now: Date = Date()) -> [ConfigError] {
        var errors: [ConfigError] = []
        func check(_ key: String, _ body: () throws(TLSMaterialError) -> Void) {
            do {
                try body()
            } catch {
                errors.append(ConfigError(key: key, value: "'\(error.path)' (\(error.problem))", expected: Self.expected(error.kind)))
            }
        }
        if let tls = self.tls {
            Self.checkIdentity(prefix: "tls", certificate: tls.certificate, key: tls.privateKey, now: now, check)
            if let ca = tls.clientCA { check("tls.client_ca") { () throws(TLSMaterialError) in _ = try TLSMaterial.certificates(file: ca, now: now) } }
        }
        for (index, socket) in self.outbound.enumerated() {
            guard let tls = socket.tls else { continue }
            if let ca = tls.caFile { check("outbound[\(index)].tls.ca_file") { () throws(TLSMaterialError) in _ = try TLSMaterial.certificates(file: ca, now: now) } }
            if let certificate = tls.certificate, let key = tls.privateKey {
                Self.checkIdentity(prefix: "outbound[\(index)].tls", certificate: certificate, key: key, now: now, check)
            }
        }
        return errors
    }

    /// The certificate first, then (only when it could be read) its key against it.
    private static func checkIdentity(
        prefix: String, certificate: String, key: String, now: Date,
        _ check: (String, () throws(TLSMaterialError) -> Void) -> Void
    ) {
        var leaf: [Certificate]?
        check("\(prefix).certificate") { () throws(TLSMaterialError) in leaf = try TLSMaterial.certificates(file: certificate, now: now) }
        check("\(prefix).private_key") { () throws(TLSMaterialError) in try TLSMaterial.checkKey(file: key, matching: leaf?.first, certificateFile: certificate) }
    }

    private static func expected(_ kind: TLSMaterialError.Kind) -> String {
        switch kind {
        case .unreadable: return "a readable file"
        case .invalidCertificate: return "a PEM certificate file"
        case .invalidKey: return "an unencrypted PEM private key"
        case .expired, .notYetValid: return "a certificate valid now"
        case .keyMismatch: return "the private key of the certificate"
        }
    }
}
