@testable import GatewayDaemon
import NIOCore
import Testing

/// The webhook's circuit breaker, action by action: what each attempt may do and what each outcome changes.
@Suite("Webhook circuit breaker")
struct WebhookCircuitTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func opensAfterTheThresholdOfFailuresInARowAndASuccessResetsTheCount() {
        var circuit = WebhookCircuit(threshold: 3, openFor: .seconds(10))
        #expect(circuit.permission(now: self.start) == .attempt)
        #expect(circuit.failed(now: self.start) == .none)
        #expect(circuit.failed(now: self.start) == .none)
        #expect(circuit.succeeded() == .none)
        #expect(circuit.state == .closed(failuresInARow: 0))
        #expect(circuit.failed(now: self.start) == .none)
        #expect(circuit.failed(now: self.start) == .none)
        #expect(circuit.failed(now: self.start) == .opened(failuresInARow: 3))
        #expect(circuit.state == .open(until: self.start + .seconds(10)))
    }

    @Test func anOpenCircuitFailsFastThenLetsOneProbeThrough() {
        var circuit = WebhookCircuit(threshold: 1, openFor: .seconds(10))
        #expect(circuit.failed(now: self.start) == .opened(failuresInARow: 1))
        #expect(circuit.permission(now: self.start + .seconds(4)) == .failFast(retryAfter: .seconds(6)))
        // A failure of an attempt that started before the circuit opened changes nothing.
        #expect(circuit.failed(now: self.start + .seconds(4)) == .none)
        #expect(circuit.state == .open(until: self.start + .seconds(10)))
        #expect(circuit.permission(now: self.start + .seconds(10)) == .probe)
        #expect(circuit.state == .probing)
        // While the probe is out, the others fail at once.
        #expect(circuit.permission(now: self.start + .seconds(11)) == .failFast(retryAfter: .seconds(10)))
        #expect(circuit.succeeded() == .closed)
        #expect(circuit.permission(now: self.start + .seconds(12)) == .attempt)
    }

    @Test func aFailedProbeOpensTheCircuitAgainForTheWholePeriod() {
        var circuit = WebhookCircuit(threshold: 2, openFor: .seconds(5))
        _ = circuit.failed(now: self.start)
        _ = circuit.failed(now: self.start)
        #expect(circuit.permission(now: self.start + .seconds(6)) == .probe)
        #expect(circuit.failed(now: self.start + .seconds(7)) == .opened(failuresInARow: 1))
        #expect(circuit.state == .open(until: self.start + .seconds(12)))
        #expect(circuit.permission(now: self.start + .seconds(8)) == .failFast(retryAfter: .seconds(4)))
    }

    @Test func withoutAThresholdItNeverOpens() {
        var circuit = WebhookCircuit(threshold: nil, openFor: .seconds(5))
        for _ in 0..<1_000 { #expect(circuit.failed(now: self.start) == .none) }
        #expect(circuit.permission(now: self.start) == .attempt)
        #expect(circuit.state == .closed(failuresInARow: 1_000))
    }
}
