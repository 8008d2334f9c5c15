import NIOCore
import Testing
@testable import WebSocketEngine

@Suite("State machine: closing, ping/pong, keepalive, idle")
struct StateMachineClosingTests {
    @Test func echoesThePeersCodeAndServerClosesTCPFirst() {
        var machine = makeMachine()
        let info = WebSocketCloseInfo(code: WebSocketCloseCode(4000), reason: "bye", initiatedLocally: false)
        #expect(machine.feed(frame(8, closePayload(4000, "bye"))) == [.closed(info)])
        // The application may still answer earlier messages until the echo is committed.
        #expect((try? machine.encode(.text("late answer"), now: t0)) != nil)
        let (echo, closeTCPAt) = machine.commitClose(now: t0)
        #expect(decodeFrame(echo!)?.payload == closePayload(4000))
        #expect(closeTCPAt == nil)
        #expect(throws: WebSocketError.connectionClosed) { try machine.encode(.text("too late"), now: t0) }
        #expect(machine.connectionClosed() == info)
    }

    @Test func clientWaitsForTheServerToCloseTCP() {
        var machine = makeMachine(role: .client)
        #expect(machine.feed(frame(8, closePayload(1000), mask: nil)).count == 1)
        let (echo, closeTCPAt) = machine.commitClose(now: t0)
        #expect(decodeFrame(echo!)?.masked == true)
        #expect(closeTCPAt == t0 + .seconds(5))
        let early = machine.closeTimerFired(now: t0 + .seconds(4))
        let onTime = machine.closeTimerFired(now: t0 + .seconds(5))
        #expect(!early && onTime)
    }

    @Test func emptyCloseIsReportedAs1005AndEchoedEmpty() {
        var machine = makeMachine()
        #expect(machine.feed(frame(8)) == [.closed(WebSocketCloseInfo(code: .noStatusReceived, initiatedLocally: false))])
        #expect(decodeFrame(machine.commitClose(now: t0).frame!)?.payload == [])
    }

    @Test(arguments: [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000] as [UInt16])
    func invalidCloseCodesAreProtocolErrors(code: UInt16) {
        var machine = makeMachine()
        #expect(machine.feed(frame(8, closePayload(code))) == [violation(.protocolError, "invalid close code \(code)")])
        #expect(decodeFrame(machine.commitClose(now: t0).frame!)?.payload.prefix(2) == [0x03, 0xEA])
    }

    @Test(arguments: [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] as [UInt16])
    func validCloseCodesAreEchoed(code: UInt16) {
        var machine = makeMachine()
        #expect(machine.feed(frame(8, closePayload(code))).count == 1)
        #expect(decodeFrame(machine.commitClose(now: t0).frame!)?.payload == closePayload(code))
    }

    @Test func oneByteClosePayloadAndBadReasonsFail() {
        var short = makeMachine()
        #expect(short.feed(frame(8, [0x03])) == [violation(.protocolError, "close frame with a 1-byte payload")])
        var badReason = makeMachine()
        #expect(badReason.feed(frame(8, closePayload(1000) + [0xFF])) == [violation(.invalidFramePayloadData, "close reason is not valid UTF-8")])
    }

    @Test func locallyStartedCloseCompletesWithThePeersEcho() throws {
        var machine = makeMachine()
        guard case .send(let frame, let deadline) = try machine.close(code: .goingAway, reason: "restart", now: t0) else {
            Issue.record("expected a close frame")
            return
        }
        #expect(decodeFrame(frame)?.payload == closePayload(1001, "restart"))
        #expect(deadline == t0 + .seconds(5))
        #expect(try machine.close(code: .normalClosure, reason: "", now: t0) == .none)
        #expect(throws: WebSocketError.connectionClosing) { try machine.encode(.text("x"), now: t0) }
        // The application is told of its own close (code and reason), not of the peer's echo without a reason.
        let own = WebSocketCloseInfo(code: .goingAway, reason: "restart", initiatedLocally: true)
        #expect(machine.feed(makeFrame(8, closePayload(1001))) == [.closed(own)])
        let (echo, closeTCPAt) = machine.commitClose(now: t0)
        #expect(echo == nil && closeTCPAt == nil)
        #expect(machine.connectionClosed() == own)
    }

    @Test func closeTimeoutEndsAnUnansweredClose() throws {
        var machine = makeMachine()
        _ = try machine.close(code: .policyViolation, reason: "rate limit exceeded", now: t0)
        let early = machine.closeTimerFired(now: t0 + .seconds(1))
        let onTime = machine.closeTimerFired(now: t0 + .seconds(5))
        #expect(!early && onTime)
        // The close is still the one this endpoint started, not a 1006: logs and metrics say why it ended.
        #expect(machine.connectionClosed() == WebSocketCloseInfo(code: .policyViolation, reason: "rate limit exceeded", initiatedLocally: true))
    }

    @Test func rejectsInvalidCloseRequestsFromTheApplication() {
        var machine = makeMachine()
        #expect(throws: WebSocketError.invalidCloseCode(1005)) { try machine.close(code: .noStatusReceived, reason: "", now: t0) }
        #expect(throws: WebSocketError.closeReasonTooLong(124)) {
            try machine.close(code: .normalClosure, reason: String(repeating: "r", count: 124), now: t0)
        }
    }

    @Test func droppedConnectionReports1006() {
        var machine = makeMachine()
        #expect(machine.connectionClosed() == WebSocketCloseInfo(code: .abnormalClosure, initiatedLocally: false))
    }

    @Test func answersPingsWithTheSamePayload() {
        var machine = makeMachine()
        let actions = machine.feed(frame(9, Array("are you there".utf8)))
        guard case .ping(let payload, let pong?) = actions.first else {
            Issue.record("expected a ping with a pong")
            return
        }
        #expect(String(buffer: payload) == "are you there")
        #expect(decodeFrame(pong)?.opcode == 10)
        #expect(decodeFrame(pong)?.payload == Array("are you there".utf8))
    }

    @Test func keepalivePingsAndTimesOutWithoutAPong() {
        var machine = makeMachine(keepalive: (.seconds(10), .seconds(3)))
        guard case .sendPing(let ping, let next) = machine.keepaliveTimerFired(now: t0) else {
            Issue.record("expected a ping")
            return
        }
        #expect(next == t0 + .seconds(3))
        let payload = ByteBuffer(bytes: decodeFrame(ping)!.payload)
        // The pong arrives: the next timer sends the next ping.
        #expect(machine.feed(frame(10, Array(payload.readableBytesView))) == [.pong(payload)])
        guard case .sendPing = machine.keepaliveTimerFired(now: t0 + .seconds(10)) else {
            Issue.record("expected a second ping")
            return
        }
        // No pong this time.
        #expect(machine.keepaliveTimerFired(now: t0 + .seconds(13)) == .pongTimedOut)
        #expect(machine.connectionClosed() == WebSocketCloseInfo(code: .goingAway, reason: "keepalive pong timeout", initiatedLocally: true))
    }

    @Test func reportsIdleOncePerSilentPeriod() {
        var machine = makeMachine(idleTimeout: .seconds(30))
        #expect(machine.idleTimerFired(now: t0 + .seconds(10))! == (false, t0 + .seconds(30)))
        _ = machine.feed(text("activity"), now: t0 + .seconds(20))
        #expect(machine.idleTimerFired(now: t0 + .seconds(30))! == (false, t0 + .seconds(50)))
        #expect(machine.idleTimerFired(now: t0 + .seconds(50))! == (true, t0 + .seconds(80)))
        #expect(machine.idleTimerFired(now: t0 + .seconds(60))! == (false, t0 + .seconds(80)))
    }
}

private func makeFrame(_ opcode: UInt8, _ payload: [UInt8]) -> ByteBuffer {
    frame(opcode, payload)
}
