import NIOCore
import Testing
@testable import WebSocketEngine

/// Exact actions of ``DeliveryStateMachine``: each test feeds events in order and compares every action returned.
@Suite("Delivery state machine")
struct DeliveryStateMachineTests {
    typealias Machine = DeliveryStateMachine

    private let close = WebSocketEvent.close(WebSocketCloseInfo(code: .normalClosure, initiatedLocally: false))
    private let failure = WebSocketEvent.error(.protocolViolation(code: .protocolError, reason: "reserved opcode 3"))
    private func message(_ text: String) -> WebSocketEvent { .text(text) }

    /// A machine whose reader already chose an `AsyncSequence`.
    private func sequenceMachine(bufferedEvents: Int = 8, closeTimeout: TimeAmount = .seconds(5)) -> Machine {
        var machine = Machine(bufferedEvents: bufferedEvents, closeTimeout: closeTimeout)
        _ = machine.sequenceAttached()
        _ = machine.heldEventsMoved()
        return machine
    }

    /// A machine whose consumer took one event without finishing it: its task was started.
    private func consumerNeedingItsTask() -> Machine {
        var machine = Machine(bufferedEvents: 8, closeTimeout: .seconds(5))
        _ = machine.consumerAttached()
        _ = machine.eventReady(self.message("a"))
        _ = machine.consumerWillTake(.message)
        let action = machine.consumerTook(done: false, inTask: false)
        precondition(action == .startConsumerTask)
        return machine
    }

    // MARK: Read gating

    @Test func heldEventsPauseReadingAtTheHighWatermarkAndTheConsumerResumesItAtTheLow() {
        var machine = Machine(bufferedEvents: 4, closeTimeout: .seconds(5))  // high 4, low 1
        #expect(machine.readRequested() == .read)
        let held = (1...4).map { machine.eventReady(self.message("m\($0)")) }
        #expect(held == (1...4).map { .hold(self.message("m\($0)")) })
        #expect(machine.readRequested() == .none)  // paused: the read waits
        #expect(machine.consumerAttached() == .startConsumerTask)
        var actions: [Machine.Action] = []
        for _ in 1...4 {
            #expect(machine.consumerTaskNext() == .takeHeldEvent)
            actions.append(machine.consumerWillTake(.message))
            actions.append(machine.consumerTook(done: true, inTask: true))
        }
        // Held 3, 2: still above the low watermark. Held 1: the waiting read goes out, once.
        #expect(actions == [.none, .none, .none, .none, .read, .none, .none, .none])
        #expect(machine.consumerTaskNext() == .park(flush: false))
    }

    @Test func aFullSequencePausesReadingUntilItDrains() {
        var machine = self.sequenceMachine()
        #expect(machine.eventReady(self.message("a")) == .yield(self.message("a")))
        machine.sequenceFull()
        #expect(machine.readRequested() == .none)
        #expect(machine.readRequested() == .none)
        #expect(machine.sequenceDrained() == .read)
        #expect(machine.sequenceDrained() == .none)  // no read was pending any more
        #expect(machine.readRequested() == .read)
    }

    @Test func anUnwritableChannelPausesReadingUntilItDrains() {
        var machine = self.sequenceMachine()
        #expect(machine.writabilityChanged(isWritable: false) == .none)
        #expect(machine.readRequested() == .none)
        machine.wrote(bytes: 10)
        #expect(machine.writabilityChanged(isWritable: true) == .drainWaitingWrites)
        #expect(machine.waitingWritesDrained() == .flush(thenRead: true))
        #expect(machine.readRequested() == .read)
    }

    @Test func aReaderThatGoesAwayResumesReadingAndDropsEvents() {
        var machine = self.sequenceMachine()
        machine.sequenceFull()
        #expect(machine.readRequested() == .none)
        #expect(machine.readerGone() == .read)
        #expect(machine.eventReady(self.message("dropped")) == .none)
        #expect(machine.delivered == 0)
    }

    // MARK: The close barrier

    @Test func aCloseWaitsUntilTheReaderTookTheEventsBeforeIt() {
        var machine = self.sequenceMachine()
        let actions: [Machine.Action] = [
            machine.eventReady(self.message("first")),
            machine.eventReady(self.close),
            machine.closeReceived(answerOwed: true, reader: ReaderProgress(waiting: false, taken: 0)),
            // The reader took "first", then the close.
            machine.barrierReached(),
            machine.barrierReached(),
            machine.barrierTimerFired(),
        ]
        #expect(actions == [
            .yield(self.message("first")), .yield(self.close), .startBarrierTimer(in: .seconds(1)),
            .finishClose(thenRead: false), .none, .none,
        ])
    }

    @Test func theBarrierTimerSendsTheCloseAfterTheGrace() {
        var machine = self.sequenceMachine(closeTimeout: .milliseconds(300))
        let actions: [Machine.Action] = [
            machine.eventReady(self.message("first")),
            machine.eventReady(self.failure),
            machine.failureDelivered(reader: ReaderProgress(waiting: false, taken: 0)),
            machine.barrierTimerFired(),
            machine.barrierReached(),
        ]
        // The grace is the close timeout when that is shorter than a second.
        #expect(actions == [
            .yield(self.message("first")), .yield(self.failure), .startBarrierTimer(in: .milliseconds(300)),
            .finishClose(thenRead: false), .none,
        ])
    }

    @Test func anIdleReaderGetsTheCloseAtOnce() {
        var machine = self.sequenceMachine()
        let actions: [Machine.Action] = [
            machine.eventReady(self.message("first")),
            machine.eventReady(self.close),
            // The reader took "first" and waits for the next event: the close.
            machine.closeReceived(answerOwed: true, reader: ReaderProgress(waiting: true, taken: 1)),
        ]
        #expect(actions == [.yield(self.message("first")), .yield(self.close), .finishClose(thenRead: false)])
    }

    @Test func aCloseThisEndStartedOwesNoAnswer() {
        var machine = self.sequenceMachine()
        #expect(machine.eventReady(self.message("late")) == .yield(self.message("late")))
        #expect(machine.eventReady(self.close) == .yield(self.close))
        #expect(machine.closeReceived(answerOwed: false, reader: ReaderProgress()) == .finishClose(thenRead: false))
    }

    @Test func aCloseAlreadyTakenByAnInlineConsumerCountsAsReached() {
        var machine = Machine(bufferedEvents: 8, closeTimeout: .seconds(5))
        let actions: [Machine.Action] = [
            machine.consumerAttached(),
            machine.eventReady(self.message("first")),
            machine.consumerWillTake(.message),
            machine.consumerTook(done: true, inTask: false),
            machine.eventReady(self.close),
            machine.consumerWillTake(.close),
            machine.consumerTook(done: true, inTask: false),
            // The reader progress passed in is the sequence's; the consumer's own counts.
            machine.closeReceived(answerOwed: true, reader: ReaderProgress()),
        ]
        #expect(actions == [
            .none, .take(self.message("first")), .none, .none, .take(self.close), .none, .none,
            .finishClose(thenRead: false),
        ])
    }

    @Test func aBusyConsumerHoldsTheCloseAndReachesTheBarrierWhenItTakesIt() {
        var machine = Machine(bufferedEvents: 8, closeTimeout: .seconds(5))
        var actions: [Machine.Action] = [
            machine.consumerAttached(),
            machine.eventReady(self.message("slow")),
            machine.consumerWillTake(.message),
            machine.consumerTook(done: false, inTask: false),  // needs its task
            machine.eventReady(self.close),  // the task runs: the close waits
            machine.closeReceived(answerOwed: true, reader: ReaderProgress()),
        ]
        #expect(machine.consumerTaskNext() == .finishEarlierEvent)
        #expect(machine.consumerTaskNext() == .takeHeldEvent)
        actions += [
            machine.consumerWillTake(.close),
            machine.consumerTook(done: true, inTask: true),
            machine.barrierTimerFired(),
        ]
        #expect(actions == [
            .none, .take(self.message("slow")), .none, .startConsumerTask, .hold(self.close),
            .startBarrierTimer(in: .seconds(1)), .finishClose(thenRead: false), .none, .none,
        ])
        #expect(machine.consumerTaskNext() == .end(flush: false))
    }

    @Test func aReaderThatGoesAwayReleasesAPendingClose() {
        var machine = self.sequenceMachine()
        machine.sequenceFull()
        let actions: [Machine.Action] = [
            machine.readRequested(),
            machine.eventReady(self.close),
            machine.closeReceived(answerOwed: true, reader: ReaderProgress()),
            machine.readerGone(),
        ]
        #expect(actions == [.none, .yield(self.close), .startBarrierTimer(in: .seconds(1)), .finishClose(thenRead: true)])
    }

    @Test func noBarrierOnceTheConnectionEnded() {
        var machine = self.sequenceMachine()
        #expect(machine.connectionEnded() == (first: true, deliverClose: true))
        #expect(machine.connectionEnded() == (first: false, deliverClose: false))
        #expect(machine.eventReady(self.failure) == .yield(self.failure))
        #expect(machine.failureDelivered(reader: ReaderProgress()) == .finishClose(thenRead: false))
        #expect(machine.deliveryEnding() == .finishSequence)
    }

    // MARK: Flush coalescing

    @Test func oneFlushPerReadLoop() {
        var machine = self.sequenceMachine()
        machine.readLoopStarted()
        machine.wrote(bytes: 6)  // a pong
        let during: [Machine.Action] = [machine.messageWritten(), machine.broadcastWritten(), machine.readerWillWait(taken: 0)]
        machine.wrote(bytes: 40_000)  // even a large answer waits for read-complete
        let large = machine.messageWritten()
        machine.readLoopEnded()
        #expect(during + [large, machine.readComplete(), machine.readComplete()] == [
            .none, .none, .none, .none, .flush(thenRead: false), .none,
        ])
    }

    @Test func writesOutsideAReadLoopFlushOnceAtTheEndOfTheTick() {
        var machine = self.sequenceMachine()
        var actions: [Machine.Action] = []
        for _ in 1...3 {
            machine.wrote(bytes: 100)
            actions.append(machine.messageWritten())
        }
        actions += [machine.scheduledFlushRan(), machine.scheduledFlushRan()]
        #expect(actions == [.scheduleFlush, .none, .none, .flush(thenRead: false), .none])
    }

    @Test func aLargeBacklogFlushesEagerly() {
        var machine = self.sequenceMachine()
        machine.wrote(bytes: 100)
        let first = machine.messageWritten()
        machine.wrote(bytes: Machine.eagerFlushBytes)
        let second = machine.messageWritten()
        #expect([first, second, machine.scheduledFlushRan()] == [.scheduleFlush, .flush(thenRead: false), .none])
    }

    @Test func writesToAnUnwritableChannelFlushAtOnce() {
        var machine = self.sequenceMachine()
        _ = machine.writabilityChanged(isWritable: false)
        machine.wrote(bytes: 10)
        #expect(machine.messageWritten() == .flush(thenRead: false))
    }

    @Test func aReaderAboutToWaitFlushesOnlyWhenItTookEverything() {
        var machine = self.sequenceMachine()
        _ = machine.eventReady(self.message("a"))
        _ = machine.eventReady(self.message("b"))
        machine.wrote(bytes: 10)
        let actions: [Machine.Action] = [
            machine.readerWillWait(taken: 1),  // "b" is waiting for it: its answer may join this one
            machine.readerWillWait(taken: 2),
            machine.readerWillWait(taken: 2),  // nothing left to flush
        ]
        #expect(actions == [.none, .flush(thenRead: false), .none])
    }

    @Test func broadcastsFlushAtOnceOutsideAReadLoop() {
        var machine = self.sequenceMachine()
        machine.wrote(bytes: 10)
        #expect([machine.broadcastWritten(), machine.broadcastWritten()] == [.flush(thenRead: false), .none])
    }

    // MARK: The consumer's task

    @Test func aConsumerTaskParksBetweenEventsAndIsWokenForTheNext() {
        var machine = Machine(bufferedEvents: 8, closeTimeout: .seconds(5))
        var actions: [Machine.Action] = [
            machine.consumerAttached(),
            machine.eventReady(self.message("a")),
            machine.consumerWillTake(.message),
            machine.consumerTook(done: false, inTask: false),
            machine.eventReady(self.message("b")),  // the task has not parked yet
        ]
        var steps = [machine.consumerTaskNext(), machine.consumerTaskNext()]
        actions += [machine.consumerWillTake(.message), machine.consumerTook(done: true, inTask: true)]
        machine.wrote(bytes: 10)  // the answers
        steps.append(machine.consumerTaskNext())
        machine.consumerParked()
        #expect(machine.draining)
        actions += [
            machine.eventReady(self.message("c")),  // parked: taken at once
            machine.consumerWillTake(.message),
            machine.consumerTook(done: false, inTask: false),
        ]
        machine.consumerWoken(more: true)
        steps += [machine.consumerTaskNext(), machine.consumerTaskNext()]
        #expect(actions == [
            .none, .take(self.message("a")), .none, .startConsumerTask, .hold(self.message("b")),
            .none, .none, .take(self.message("c")), .none, .wakeConsumerTask,
        ])
        #expect(steps == [.finishEarlierEvent, .takeHeldEvent, .park(flush: true), .finishEarlierEvent, .park(flush: false)])
    }

    @Test func anIdleConsumerTaskIsRetiredAndTheNextEventStartsANewOne() {
        var machine = Machine(bufferedEvents: 8, closeTimeout: .seconds(5))
        var actions: [Machine.Action] = [
            machine.consumerAttached(),
            machine.sweeperFoundIdle(),  // no task: nothing to retire
            machine.eventReady(self.message("a")),
            machine.consumerWillTake(.message),
            machine.consumerTook(done: false, inTask: false),
        ]
        var steps = [machine.consumerTaskNext(), machine.consumerTaskNext()]
        machine.consumerParked()
        actions.append(machine.sweeperFoundIdle())
        machine.consumerWoken(more: false)
        steps.append(machine.consumerTaskNext())
        actions += [
            machine.consumerTaskEnded(),
            machine.eventReady(self.message("b")),
            machine.consumerWillTake(.message),
            machine.consumerTook(done: false, inTask: false),
        ]
        #expect(actions == [
            .none, .none, .take(self.message("a")), .none, .startConsumerTask, .retireConsumerTask, .none,
            .take(self.message("b")), .none, .startConsumerTask,
        ])
        #expect(steps == [.finishEarlierEvent, .park(flush: false), .end(flush: false)])
        #expect(machine.draining)
    }

    @Test func aRetiredTaskWithWorkLeftKeepsGoing() {
        var machine = self.consumerNeedingItsTask()
        #expect(machine.consumerTaskNext() == .finishEarlierEvent)
        #expect(machine.consumerTaskNext() == .park(flush: false))
        machine.consumerParked()
        #expect(machine.sweeperFoundIdle() == .retireConsumerTask)
        // Before the task resumes, an event arrives: not between events (the task was resumed), so it is held.
        #expect(machine.eventReady(self.message("b")) == .hold(self.message("b")))
        machine.consumerWoken(more: false)
        #expect(machine.consumerTaskNext() == .takeHeldEvent)
    }

    @Test func theDeliveryCompletesWhenTheTaskEndsAfterTheClose() {
        var machine = self.consumerNeedingItsTask()
        #expect(machine.connectionEnded() == (first: true, deliverClose: true))
        #expect(machine.eventReady(self.close) == .hold(self.close))
        #expect(machine.deliveryEnding() == .none)  // the task still runs
        #expect(machine.consumerTaskNext() == .finishEarlierEvent)
        #expect(machine.consumerTaskNext() == .takeHeldEvent)
        #expect(machine.consumerWillTake(.close) == .none)
        #expect(machine.consumerTook(done: true, inTask: true) == .none)
        #expect(machine.consumerTaskNext() == .end(flush: false))
        #expect(machine.consumerTaskEnded() == .completeDelivery)
        #expect(machine.sink == .done)
    }

    @Test func aConsumerOfAClosedConnectionWithNothingHeldCompletesAtOnce() {
        var machine = Machine(bufferedEvents: 8, closeTimeout: .seconds(5))
        #expect(machine.connectionEnded() == (first: true, deliverClose: true))
        #expect(machine.eventReady(self.close) == .hold(self.close))
        #expect(machine.deliveryEnding() == .none)
        #expect(machine.consumerAttached() == .startConsumerTask)
        #expect(machine.sequenceAttached() == .rejectReader)
    }
}
