import ArgumentParser

/// The load generator. Connections are spread over several loopback source addresses.
@main
struct WSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsbench", abstract: "Measure a WebSocket server on loopback.",
        subcommands: [Echo.self, Hold.self, Connect.self, Broadcast.self])
}

/// Options every mode shares.
struct Target: ParsableArguments {
    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 9300
    @Option(help: "Source addresses to spread connections over.") var sources = "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"
    @Option(help: "Connections opened at once while connecting.") var connectConcurrency = 64
    @Option(help: "Event-loop threads of the generator.") var threads = 1
    @Option(help: "A name for the server, copied into the report.") var label: String?
    @Flag(help: "Print one JSON line (for scripts/bench.sh) instead of indented JSON.") var json = false

    func url(_ path: String) -> String { "ws://\(self.host):\(self.port)\(path)" }
}
