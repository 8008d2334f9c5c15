import NIOCore
import Testing
@testable import WebSocketEngine

/// Exact verdicts of ``AdmissionStateMachine`` and ``AcceptBackoff``: each test feeds arrivals, handshake ends and
/// closes in order, at given times, and compares every verdict and count.
@Suite("Admission state machine")
struct AdmissionStateMachineTests {
    typealias Machine = AdmissionStateMachine
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    private func at(_ milliseconds: Int64) -> NIODeadline { self.start + .milliseconds(milliseconds) }

    @Test func theTotalOfPendingHandshakesIsCappedAndFreedWhenAHandshakeEnds() {
        var machine = Machine(limits: .init(maxPendingHandshakes: 2, maxPendingHandshakesPerAddress: nil))
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(0)) == .admit)
        #expect(machine.connectionArrived(from: "10.0.0.2", now: self.at(0)) == .admit)
        #expect(machine.connectionArrived(from: "10.0.0.3", now: self.at(0)) == .refuse(.pendingHandshakes))
        #expect(machine.connectionArrived(from: nil, now: self.at(0)) == .refuse(.pendingHandshakes))
        machine.handshakeEnded(from: "10.0.0.1", upgraded: true)
        #expect(machine.pendingTotal == 1)
        #expect(machine.connectionArrived(from: "10.0.0.3", now: self.at(1)) == .admit)
        #expect(machine.pendingTotal == 2)
    }

    @Test func pendingHandshakesPerAddressAreCappedWithoutTouchingOtherAddresses() {
        var machine = Machine(limits: .init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: 2))
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(0)) == .admit)
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(0)) == .admit)
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(0)) == .refuse(.pendingHandshakesPerAddress))
        #expect(machine.connectionArrived(from: "10.0.0.2", now: self.at(0)) == .admit)
        // An upgraded connection is no longer pending: the address may start another handshake.
        machine.handshakeEnded(from: "10.0.0.1", upgraded: true)
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(0)) == .admit)
        // A failed one is gone altogether.
        machine.handshakeEnded(from: "10.0.0.1", upgraded: false)
        #expect(machine.entries["10.0.0.1"] == .init(pending: 1, open: 1, tokens: 0, refilled: self.at(0)))
    }

    @Test func connectionsPerAddressCountPendingAndOpenOnesUntilTheyClose() {
        var machine = Machine(limits: .init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: nil, maxConnectionsPerAddress: 2))
        #expect(machine.connectionArrived(from: "::1", now: self.at(0)) == .admit)
        machine.handshakeEnded(from: "::1", upgraded: true)
        #expect(machine.connectionArrived(from: "::1", now: self.at(0)) == .admit)
        #expect(machine.connectionArrived(from: "::1", now: self.at(0)) == .refuse(.connectionsPerAddress))
        machine.handshakeEnded(from: "::1", upgraded: false)
        #expect(machine.connectionArrived(from: "::1", now: self.at(0)) == .admit)
        machine.handshakeEnded(from: "::1", upgraded: true)
        #expect(machine.connectionArrived(from: "::1", now: self.at(0)) == .refuse(.connectionsPerAddress))
        machine.connectionClosed(from: "::1")
        #expect(machine.connectionArrived(from: "::1", now: self.at(0)) == .admit)
        machine.handshakeEnded(from: "::1", upgraded: false)
        machine.connectionClosed(from: "::1")
        // Without a rate limit, an address with no connection is forgotten at once.
        #expect(machine.entries.isEmpty && machine.pendingTotal == 0)
    }

    @Test func theHandshakeRateIsATokenBucketPerAddress() {
        var machine = Machine(limits: .init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: nil, handshakeRatePerAddress: .init(perSecond: 10, burst: 3)))
        for _ in 0..<3 {
            #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(0)) == .admit)
            machine.handshakeEnded(from: "10.0.0.1", upgraded: false)
        }
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(0)) == .refuse(.handshakeRate))
        #expect(machine.connectionArrived(from: "10.0.0.2", now: self.at(0)) == .admit)
        // 10 per second: one token after 100 ms, and refusals do not spend tokens.
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(50)) == .refuse(.handshakeRate))
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(100)) == .admit)
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(100)) == .refuse(.handshakeRate))
        // The bucket never holds more than the burst.
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(10_000)) == .admit)
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(10_000)) == .admit)
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(10_000)) == .admit)
        #expect(machine.connectionArrived(from: "10.0.0.1", now: self.at(10_000)) == .refuse(.handshakeRate))
    }

    @Test func quietAddressesAreForgottenOnceTheirBucketIsFull() {
        var machine = Machine(limits: .init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: nil, handshakeRatePerAddress: .init(perSecond: 1, burst: 1)))
        let count = Machine.minimumSweepThreshold
        for index in 0..<count {
            #expect(machine.connectionArrived(from: "10.1.\(index / 256).\(index % 256)", now: self.at(0)) == .admit)
            machine.handshakeEnded(from: "10.1.\(index / 256).\(index % 256)", upgraded: false)
        }
        #expect(machine.entries.count == count)
        // One second later every bucket is full again: the next arrival sweeps them all.
        #expect(machine.connectionArrived(from: "10.2.0.1", now: self.at(1_000)) == .admit)
        #expect(machine.entries.count == 1)
    }

    @Test func connectionsWithoutAnAddressCountOnlyInTheTotal() {
        var machine = Machine(limits: .init(maxPendingHandshakes: 1, maxPendingHandshakesPerAddress: 1, maxConnectionsPerAddress: 1))
        #expect(machine.connectionArrived(from: nil, now: self.at(0)) == .admit)
        #expect(machine.entries.isEmpty)
        machine.handshakeEnded(from: nil, upgraded: true)
        machine.connectionClosed(from: nil)
        #expect(machine.pendingTotal == 0)
    }

    @Test func acceptBackoffDoublesUpToASecondAndStartsOverAfterAnAccept() {
        var backoff = AcceptBackoff()
        #expect(backoff.failed() == .milliseconds(50))
        #expect(backoff.failed() == .milliseconds(100))
        #expect(backoff.failed() == .milliseconds(200))
        #expect(backoff.failed() == .milliseconds(400))
        #expect(backoff.failed() == .milliseconds(800))
        #expect(backoff.failed() == .seconds(1))
        #expect(backoff.failed() == .seconds(1))
        backoff.accepted()
        #expect(backoff.failed() == .milliseconds(50))
        #expect(AcceptBackoff.isResourceError(24) && !AcceptBackoff.isResourceError(104))
    }
}
