import GatewayCore
import ArgumentParser
import GatewayDaemon
import Logging
import Metrics
import Prometheus

#if canImport(Glibc)
import Glibc
#endif

/// `wsgate`: the WebSocket gateway daemon.
@main
struct WSGate: AsyncParsableCommand {
    /// The release this binary was built from.
    static let version = Daemon.version

    static let configuration = CommandConfiguration(
        commandName: "wsgate",
        abstract: "WebSocketGateway: serve WebSocket routes from a YAML file, with a management API and webhooks.",
        usage: """
            wsgate [serve] [--config FILE] [--listen HOST:PORT] [--admin-listen HOST:PORT] [--log-level LEVEL] [--log-format text|json]
            wsgate check --config FILE
            wsgate connect URL [options]
            """,
        discussion: """
            Without --config it runs an embedded default: /echo and /chat/{room} on 127.0.0.1:8080, the management API \
            on 127.0.0.1:9090. The serve options (see 'wsgate help serve'):
              --config FILE            the YAML configuration file
              --listen HOST:PORT       override `listen`
              --admin-listen HOST:PORT override `admin.listen`
              --log-level LEVEL        override `log.level`: trace, debug, info, notice, warning, error, critical
              --log-format FORMAT      override `log.format`: text or json
            """,
        version: WSGate.version,
        subcommands: [Serve.self, Check.self, Connect.self],
        defaultSubcommand: Serve.self
    )
}

extension LogSection.Level: ExpressibleByArgument {}
extension LogSection.Format: ExpressibleByArgument {}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway (the default command).")

    @Option(help: "The YAML configuration file (default: the embedded configuration).") var config: String?
    @Option(help: "Override `listen`, e.g. 127.0.0.1:8080.") var listen: String?
    @Option(help: "Override `admin.listen`, e.g. 127.0.0.1:9090.") var adminListen: String?
    @Option(help: "Override `log.level`: trace, debug, info, notice, warning, error, critical.") var logLevel: LogSection.Level?
    @Option(help: "Override `log.format`: text or json.") var logFormat: LogSection.Format?

    func run() async throws {
        var configuration: DaemonConfiguration
        do {
            configuration = try DaemonConfiguration.load(path: self.config)
            if let listen = self.listen {
                guard let address = ListenAddress.parse(listen) else {
                    throw ConfigError(key: "--listen", value: "'\(listen)'", expected: "host:port such as 127.0.0.1:8080")
                }
                configuration.listen = address
            }
            if let adminListen = self.adminListen {
                guard let address = ListenAddress.parse(adminListen) else {
                    throw ConfigError(key: "--admin-listen", value: "'\(adminListen)'", expected: "host:port such as 127.0.0.1:9090")
                }
                configuration.admin.listen = address
                try configuration.admin.check(listenKey: "--admin-listen", tokenKey: "admin.token")
            }
        } catch let error as ConfigError {
            FileHandleOutput.error("wsgate: \(self.source): \(error)")
            throw ExitCode(1)
        }
        let level = Logger.Level(rawValue: (self.logLevel ?? configuration.log.level).rawValue) ?? .info
        let json = (self.logFormat ?? configuration.log.format) == .json
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "wsgate")
        do {
            try await Daemon(configuration: configuration).run(logger: logger, metrics: registry) { banner in
                print(banner)
                fflush(nil)
            }
        } catch let error as ConfigError {
            FileHandleOutput.error("wsgate: \(self.source): \(error)")
            throw ExitCode(1)
        }
    }

    /// The configuration's name in error messages: its file, or the embedded default.
    private var source: String { self.config ?? "the embedded configuration" }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a configuration file and exit 0 (valid) or 1 (not).")

    @Option(help: "The YAML configuration file.") var config: String

    func run() async throws {
        let result = DaemonConfiguration.check(path: self.config)
        guard let configuration = result.configuration else {
            for error in result.errors { FileHandleOutput.error("wsgate: \(self.config): \(error)") }
            FileHandleOutput.error("wsgate: \(self.config) has \(result.errors.count) error\(result.errors.count == 1 ? "" : "s")")
            throw ExitCode(1)
        }
        print("wsgate: \(self.config) is valid: \(configuration.routes.count) route(s), listen \(configuration.listen), admin \(configuration.admin.listen)")
        for warning in configuration.warnings { FileHandleOutput.error("wsgate: warning: \(warning)") }
    }
}

enum FileHandleOutput {
    static func error(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }
}
