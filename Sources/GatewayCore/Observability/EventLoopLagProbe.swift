import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Measures how late each event loop runs a task handed to it: every `interval`, a task is submitted to every
/// loop of `group`, and the time until it runs is the loop's lag (a loop busy with a long callback, or a machine
/// short of CPU, shows here first). Reported as the gauge `wsgate_event_loop_lag_seconds{loop}` and, for the
/// worst loop, `wsgate_event_loop_lag_seconds{loop="max"}`.
///
/// A ``Service``: put it in ``GatewayConfiguration/services`` (the daemon does) and it runs as long as the gateway.
public struct EventLoopLagProbe: Service {
    private let group: any EventLoopGroup
    private let interval: Duration

    /// A probe of `group`'s loops every `interval` (default 1 s).
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, interval: Duration = .seconds(1)) {
        self.group = group
        self.interval = interval
    }

    public func run() async throws {
        let loops = Array(self.group.makeIterator())
        let gauges = loops.indices.map { Gauge(label: "wsgate_event_loop_lag_seconds", dimensions: [("loop", String($0))]) }
        let worst = Gauge(label: "wsgate_event_loop_lag_seconds", dimensions: [("loop", "max")])
        while !Task.isCancelled {
            var maximum = 0.0
            for (loop, gauge) in zip(loops, gauges) {
                let submitted = NIODeadline.now()
                let ran = try await loop.submit { NIODeadline.now() }.get()
                let lag = Double((ran - submitted).nanoseconds) / 1e9
                gauge.record(lag)
                maximum = max(maximum, lag)
            }
            worst.record(maximum)
            // Cancellation (the gateway stopping) ends the probe: not a failure.
            try? await Task.sleep(for: self.interval)
        }
    }
}
