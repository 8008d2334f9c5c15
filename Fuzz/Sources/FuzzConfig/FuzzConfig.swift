import FuzzSupport
import GatewayCore
import GatewayDaemon

// The daemon's configuration loader: the input is a YAML configuration file, decoded as `wsgate --config` decodes
// it (with `${VAR}` expansion from a fixed environment). Any input must give a configuration or a `ConfigError`.
//
// Checked: a configuration that loads has at least one route, unique route paths, valid ports and an admin
// section that passes its own check; its outbound sockets' reconnect waits can be computed.

let environment = ["WSGATE_TOKEN": "secret", "PORT": "8081", "BACKEND": "http://127.0.0.1:9000/hook"]

func run(_ input: inout FuzzInput) {
    let text = String(decoding: input.rest, as: UTF8.self)
    guard let configuration = try? DaemonConfiguration.parse(yaml: text, environment: environment) else { return }
    fuzzCheck(!configuration.routes.isEmpty, "a configuration without routes")
    fuzzCheck(Set(configuration.routes.map(\.path)).count == configuration.routes.count, "two routes with one path")
    fuzzCheck((0...65535).contains(configuration.listen.port), "listen port \(configuration.listen.port)")
    fuzzCheck((0...65535).contains(configuration.admin.listen.port), "admin port \(configuration.admin.listen.port)")
    fuzzCheck(
        (try? configuration.admin.check(listenKey: "admin.listen", tokenKey: "admin.token")) != nil,
        "a loaded admin section fails its own check")
    // An outbound socket's reconnect waits, as the socket computes them after each failure.
    for socket in configuration.outbound {
        for retry in [1, 2, 3, 20, 64, 1000] {
            _ = socket.reconnect.delay(beforeRetry: retry, random: { 0 })
            _ = socket.reconnect.delay(beforeRetry: retry, random: { 0.999_999 })
        }
    }
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    run(&input)
    return 0
}
