import GatewayCluster
import Testing

/// The membership state machine, action by action.
@Suite("NodeLifecycle: join, heartbeat, outage, rejoin, leave")
struct NodeLifecycleTests {
    private func machine() -> NodeLifecycle { NodeLifecycle(heartbeat: .seconds(2), nodeTimeout: .seconds(10)) }

    @Test func joinsThenHeartbeatsEveryInterval() {
        var node = self.machine()
        #expect(node.start() == .join)
        #expect(node.start() == .none)
        #expect(!node.isMember)
        #expect(node.joined(now: .seconds(1)) == [.wake(at: .seconds(3))])
        #expect(node.isMember)
        // An early wake-up waits for the rest of the interval.
        #expect(node.tick(now: .seconds(2)) == .wake(at: .seconds(3)))
        #expect(node.tick(now: .seconds(3)) == .heartbeat)
        #expect(node.heartbeatWritten(now: .milliseconds(3_100), ownRowPresent: true) == .wake(at: .milliseconds(5_100)))
        #expect(node.state == .up(lastBeat: .milliseconds(3_100)))
    }

    @Test func aNodeMarkedLostJoinsAgain() {
        var node = self.machine()
        _ = node.start()
        _ = node.joined(now: .zero)
        #expect(node.tick(now: .seconds(2)) == .heartbeat)
        #expect(node.heartbeatWritten(now: .seconds(2), ownRowPresent: false) == .join)
        #expect(node.state == .joining(attempt: 1))
        #expect(node.joined(now: .seconds(3)) == [.wake(at: .seconds(5))])
    }

    @Test func anOutageIsReportedOnceRetriedEveryHeartbeatAndEndsWithARejoin() {
        var node = self.machine()
        _ = node.start()
        _ = node.joined(now: .zero)
        _ = node.tick(now: .seconds(2))
        #expect(node.failed(now: .seconds(2), reason: "refused") == [.reportUnreachable(reason: "refused"), .wake(at: .seconds(4))])
        #expect(!node.isMember)
        #expect(node.tick(now: .seconds(4)) == .join)
        #expect(node.failed(now: .seconds(4), reason: "refused") == [.wake(at: .seconds(6))])
        #expect(node.tick(now: .seconds(6)) == .join)
        #expect(node.state == .unreachable(since: .seconds(2), attempt: 2))
        #expect(node.joined(now: .seconds(7)) == [.reportReconnected(outage: .seconds(5)), .wake(at: .seconds(9))])
        #expect(node.isMember)
    }

    @Test func aFirstJoinThatFailsIsAnOutageToo() {
        var node = self.machine()
        _ = node.start()
        #expect(node.failed(now: .zero, reason: "no database") == [.reportUnreachable(reason: "no database"), .wake(at: .seconds(2))])
        #expect(node.tick(now: .seconds(2)) == .join)
        #expect(node.joined(now: .seconds(2)) == [.reportReconnected(outage: .seconds(2)), .wake(at: .seconds(4))])
    }

    @Test func stoppingLeavesOnceFromAnyLiveState() {
        var up = self.machine()
        _ = up.start()
        _ = up.joined(now: .zero)
        #expect(up.stop() == .leave)
        #expect(up.stop() == .none)
        #expect(up.tick(now: .seconds(10)) == .none)
        #expect(up.heartbeatWritten(now: .seconds(10), ownRowPresent: true) == .none)
        up.leftCluster()
        #expect(up.state == .left)

        var unreachable = self.machine()
        _ = unreachable.start()
        _ = unreachable.failed(now: .zero, reason: "x")
        #expect(unreachable.stop() == .leave)

        var idle = self.machine()
        #expect(idle.stop() == .none)
        #expect(idle.state == .left)
        #expect(idle.start() == .none)
    }
}
