import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import WebSocketEngine
import WebSocketTestKit

/// Echoes text at once in `take`; a text `"slow"` is finished in the task, after `release` (recorded in `finish`).
private final class EchoingConsumer: WebSocketEventConsumer, @unchecked Sendable {
    let socket: WebSocket
    let seen = NIOLockedValueBox<[String]>([])
    let release = Mailbox<Void>()
    // Touched on the event loop only.
    private var slow: String?

    init(socket: WebSocket) {
        self.socket = socket
    }

    func take(_ event: WebSocketEvent) -> Bool {
        #expect(self.socket.eventLoop.inEventLoop)
        switch event {
        case .text("slow"):
            self.slow = "slow"
            return false
        case .text(let text):
            self.seen.withLockedValue { $0.append("now \(text)") }
            #expect((try? self.socket.trySend(.text(text))) == true)
        case .close(let info):
            self.seen.withLockedValue { $0.append("close \(info.code.rawValue)") }
        default:
            break
        }
        return true
    }

    func finish() async {
        #expect(self.socket.eventLoop.inEventLoop)
        guard let text = self.slow else { return }
        self.slow = nil
        _ = await self.release.take()
        self.seen.withLockedValue { $0.append("task \(text)") }
        try? await self.socket.send(text: text)
    }
}

@Suite("Events delivered to a consumer (at once on the event loop, or in a task)")
struct EventConsumerTests {
    @Test func aConsumerThatAnswersAtOnceNeedsNoTask() async throws {
        let served = Mailbox<(WebSocket, EchoingConsumer)>()
        let finished = Mailbox<Void>()
        try await withServer(onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                let consumer = EchoingConsumer(socket: socket)
                socket.deliverEvents(consumer: consumer).whenSuccess { finished.put(()) }
                served.put((socket, consumer))
            })
        }) { port in
            let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            let (socket, consumer) = try #require(await served.take())
            for text in ["a", "b", "c"] {
                try await client.send(text: text)
                #expect(try await client.receive() == .text(text))
            }
            // Every event was taken and answered in the channel's read: no task was ever started.
            #expect(try await !socket.callbackTaskExists)
            let info = try await client.close(code: .normalClosure, reason: "bye")
            #expect(info.code == .normalClosure)
            _ = await finished.take()
            #expect(consumer.seen.withLockedValue { $0 } == ["now a", "now b", "now c", "close 1000"])
            #expect(try await !socket.callbackTaskExists)
        }
    }

    @Test func eventsThatArriveWhileOneIsFinishedWaitForItInOrder() async throws {
        let served = Mailbox<EchoingConsumer>()
        try await withServer(onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                let consumer = EchoingConsumer(socket: socket)
                socket.deliverEvents(consumer: consumer)
                served.put(consumer)
            })
        }) { port in
            let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            let consumer = try #require(await served.take())
            for text in ["a", "slow", "b", "c"] { try await client.send(text: text) }
            #expect(try await client.receive() == .text("a"))
            // "b" and "c" arrive while "slow" is unfinished: they wait for it instead of going to `take`.
            let deadline = ContinuousClock.now + .seconds(10)
            while try await consumer.socket.eventsWaiting < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await consumer.socket.eventsWaiting == 2)
            #expect(consumer.seen.withLockedValue { $0 } == ["now a"])
            consumer.release.put(())
            for text in ["slow", "b", "c"] { #expect(try await client.receive() == .text(text)) }
            #expect(consumer.seen.withLockedValue { $0 } == ["now a", "task slow", "now b", "now c"])
            try await client.close()
        }
    }

    @Test func trySendDeclinesOnceTheOutboundQueueIsFullAndSendsNothing() async throws {
        var configuration = WebSocketServerConfiguration()
        configuration.connection.outboundQueueSize = 64 * 1024
        let outcome = Mailbox<Int>()
        try await withServer(configuration, onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                _ = try? await socket.receive()
                // Off the event loop, `trySend` leaves the work to `send`.
                let offLoop = await Task.detached { try? socket.trySend(.text("off the loop")) }.value
                #expect(offLoop == false)
                let sent = try? await socket.eventLoop.submit {
                    var sent = 0
                    while sent < 10_000, (try? socket.trySend(.binary(ByteBuffer(repeating: 1, count: 16 * 1024)))) == true {
                        sent += 1
                    }
                    return sent
                }.get()
                outcome.put(sent ?? -1)
                try? await socket.send(text: "last")
            })
        }) { port in
            let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            try await client.send(text: "go")
            let sent = try #require(await outcome.take())
            // Sends stop at the queue's limit (64 KiB of 16 KiB messages, give or take what the kernel took).
            #expect(sent >= 4 && sent < 10_000)
            for _ in 0..<sent {
                guard case .binary(let buffer)? = try await client.receive() else {
                    Issue.record("a message is missing")
                    return
                }
                #expect(buffer.readableBytes == 16 * 1024)
            }
            // Nothing else was queued by the declined call.
            #expect(try await client.receive() == .text("last"))
            try await client.close()
        }
    }
}
