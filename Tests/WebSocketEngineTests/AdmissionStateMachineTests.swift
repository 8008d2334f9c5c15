import NIOCore
import Testing
@testable import WebSocketEngine

/// Exact verdicts of ``AdmissionStateMachine`` and ``AcceptBackoff``: each test feeds arrivals, handshake ends and
/// closes in order, at given times, and compares every verdict and count.
@Suite("Admission state machine")
struct AdmissionStateMachineTests {
    typealias Machine = AdmissionStateMachine
    private static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    private static func at(_ milliseconds: Int64) -> NIODeadline { Self.start + .milliseconds(milliseconds) }

    /// A machine that numbers the connections it is given.
    struct Harness {
        var machine: Machine
        private var next: UInt64 = 0

        init(_ limits: WebSocketAdmissionLimits) {
            self.machine = Machine(limits: limits)
        }

        /// A connection arrives from `address` `milliseconds` after the start: its id and the verdict.
        mutating func arrive(_ address: String?, at milliseconds: Int64 = 0) -> (id: UInt64, verdict: Machine.Verdict) {
            self.next += 1
            return (self.next, self.machine.connectionArrived(self.next, from: address, now: AdmissionStateMachineTests.at(milliseconds)))
        }

        /// A connection arrives and its handshake ends at once; returns the verdict.
        mutating func arriveAndEnd(_ address: String?, at milliseconds: Int64 = 0, upgraded: Bool = false) -> Machine.Verdict {
            let (id, verdict) = self.arrive(address, at: milliseconds)
            if verdict == .admit { self.machine.handshakeEnded(id, upgraded: upgraded) }
            return verdict
        }
    }

    @Test func theTotalOfPendingHandshakesIsCappedAndFreedWhenAHandshakeEnds() {
        var harness = Harness(.init(maxPendingHandshakes: 2, maxPendingHandshakesPerAddress: nil))
        let first = harness.arrive("10.0.0.1")
        #expect(first.verdict == .admit)
        #expect(harness.arrive("10.0.0.2").verdict == .admit)
        #expect(harness.arrive("10.0.0.3").verdict == .refuse(.pendingHandshakes))
        #expect(harness.arrive(nil).verdict == .refuse(.pendingHandshakes))
        harness.machine.handshakeEnded(first.id, upgraded: true)
        #expect(harness.machine.pendingTotal == 1)
        #expect(harness.arrive("10.0.0.3", at: 1).verdict == .admit)
        #expect(harness.machine.pendingTotal == 2)
    }

    @Test func atTheCapTheOldestConnectionStillSendingItsRequestIsEvicted() {
        var harness = Harness(.init(maxPendingHandshakes: 3, maxPendingHandshakesPerAddress: nil))
        let slow = harness.arrive("10.0.0.1", at: 0)
        let deciding = harness.arrive("10.0.0.2", at: 100)
        let recent = harness.arrive("10.0.0.3", at: 600)
        // A request that arrived whole waits for the application: never evicted.
        harness.machine.requestReceived(deciding.id)
        // Under a second old, nobody is evicted: the newcomer is refused.
        #expect(harness.arrive("10.0.0.4", at: 900).verdict == .refuse(.pendingHandshakes))
        // The slow one, a second old, makes room.
        let newcomer = harness.arrive("10.0.0.4", at: 1_000)
        #expect(newcomer.verdict == .admitEvicting(slow.id, address: "10.0.0.1"))
        #expect(harness.machine.pendingTotal == 3 && harness.machine.entries["10.0.0.1"] == nil)
        // Its handler's end is ignored: it no longer counts.
        harness.machine.handshakeEnded(slow.id, upgraded: false)
        #expect(harness.machine.pendingTotal == 3)
        // The next eviction skips the deciding connection and takes the next oldest receiving one.
        #expect(harness.arrive("10.0.0.5", at: 1_600).verdict == .admitEvicting(recent.id, address: "10.0.0.3"))
        #expect(harness.arrive("10.0.0.6", at: 1_700).verdict == .refuse(.pendingHandshakes))
    }

    @Test func pendingHandshakesPerAddressAreCappedWithoutTouchingOtherAddresses() {
        var harness = Harness(.init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: 2))
        let first = harness.arrive("10.0.0.1")
        #expect(first.verdict == .admit)
        let second = harness.arrive("10.0.0.1")
        #expect(harness.arrive("10.0.0.1").verdict == .refuse(.pendingHandshakesPerAddress))
        #expect(harness.arrive("10.0.0.2").verdict == .admit)
        // An upgraded connection is no longer pending: the address may start another handshake.
        harness.machine.handshakeEnded(first.id, upgraded: true)
        #expect(harness.arrive("10.0.0.1").verdict == .admit)
        // A failed one is gone altogether; without a per-address connection limit, open ones are not counted.
        harness.machine.handshakeEnded(second.id, upgraded: false)
        #expect(harness.machine.entries["10.0.0.1"] == .init(pending: 1, open: 0, tokens: 0, refilled: Self.at(0)))
        #expect(!harness.machine.countsOpenConnections)
    }

    @Test func connectionsPerAddressCountPendingAndOpenOnesUntilTheyClose() {
        var harness = Harness(.init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: nil, maxConnectionsPerAddress: 2))
        #expect(harness.arriveAndEnd("::1", upgraded: true) == .admit)
        let pending = harness.arrive("::1")
        #expect(pending.verdict == .admit)
        #expect(harness.arrive("::1").verdict == .refuse(.connectionsPerAddress))
        harness.machine.handshakeEnded(pending.id, upgraded: false)
        #expect(harness.arriveAndEnd("::1", upgraded: true) == .admit)
        #expect(harness.arrive("::1").verdict == .refuse(.connectionsPerAddress))
        harness.machine.connectionClosed(from: "::1")
        #expect(harness.arriveAndEnd("::1") == .admit)
        harness.machine.connectionClosed(from: "::1")
        // Without a rate limit, an address with no connection is forgotten at once.
        #expect(harness.machine.entries.isEmpty && harness.machine.pendingTotal == 0)
    }

    @Test func theHandshakeRateIsATokenBucketPerAddress() {
        var harness = Harness(.init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: nil, handshakeRatePerAddress: .init(perSecond: 10, burst: 3)))
        for _ in 0..<3 { #expect(harness.arriveAndEnd("10.0.0.1") == .admit) }
        #expect(harness.arrive("10.0.0.1").verdict == .refuse(.handshakeRate))
        #expect(harness.arriveAndEnd("10.0.0.2") == .admit)
        // 10 per second: one token after 100 ms, and refusals do not spend tokens.
        #expect(harness.arrive("10.0.0.1", at: 50).verdict == .refuse(.handshakeRate))
        #expect(harness.arriveAndEnd("10.0.0.1", at: 100) == .admit)
        #expect(harness.arrive("10.0.0.1", at: 100).verdict == .refuse(.handshakeRate))
        // The bucket never holds more than the burst.
        for _ in 0..<3 { #expect(harness.arriveAndEnd("10.0.0.1", at: 10_000) == .admit) }
        #expect(harness.arrive("10.0.0.1", at: 10_000).verdict == .refuse(.handshakeRate))
    }

    @Test func quietAddressesAreForgottenOnceTheirBucketIsFull() {
        var harness = Harness(.init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: nil, handshakeRatePerAddress: .init(perSecond: 1, burst: 1)))
        let count = Machine.minimumSweepThreshold
        for index in 0..<count {
            #expect(harness.arriveAndEnd("10.1.\(index / 256).\(index % 256)") == .admit)
        }
        #expect(harness.machine.entries.count == count)
        // One second later every bucket is full again: the next arrival sweeps them all.
        #expect(harness.arrive("10.2.0.1", at: 1_000).verdict == .admit)
        #expect(harness.machine.entries.count == 1)
    }

    @Test func connectionsWithoutAnAddressCountOnlyInTheTotal() {
        var harness = Harness(.init(maxPendingHandshakes: 1, maxPendingHandshakesPerAddress: 1, maxConnectionsPerAddress: 1))
        let connection = harness.arrive(nil)
        #expect(connection.verdict == .admit && harness.machine.entries.isEmpty)
        harness.machine.handshakeEnded(connection.id, upgraded: true)
        harness.machine.connectionClosed(from: nil)
        #expect(harness.machine.pendingTotal == 0)
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
