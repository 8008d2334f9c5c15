import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import WebSocketEngine
import WebSocketTestKit

@Suite("Events delivered to a callback (no task while idle)")
struct CallbackDeliveryTests {
    @Test func theCallbackGetsEveryEventInOrderFromThoseThatArrivedBeforeIt() async throws {
        let sent = Mailbox<Void>()
        let seen = Mailbox<WebSocketEvent>()
        let finished = Mailbox<Void>()
        try await withServer(onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                // The client's first messages arrive before the callback is chosen: they wait for it.
                _ = await sent.take()
                socket.deliverEvents { event in
                    #expect(socket.eventLoop.inEventLoop)
                    seen.put(event)
                    if case .text(let text) = event { try? await socket.send(text: text) }
                }.whenSuccess { finished.put(()) }
                // The handler returns; the connection stays served by the callback.
            })
        }) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            for text in ["a", "b", "c"] { try await socket.send(text: text) }
            sent.put(())
            for text in ["a", "b", "c"] { #expect(try await socket.receive() == .text(text)) }
            try await socket.send(text: "after the handler returned")
            #expect(try await socket.receive() == .text("after the handler returned"))
            try await socket.close(code: .normalClosure, reason: "bye")
            for text in ["a", "b", "c", "after the handler returned"] { #expect(await seen.take() == .text(text)) }
            guard case .close(let info)? = await seen.take() else {
                Issue.record("the last event is not the close")
                return
            }
            #expect(info.code == .normalClosure && info.reason == "bye")
            _ = await finished.take()
        }
    }

    @Test func aSlowCallbackHoldsBackInputWithoutLosingAny() async throws {
        var configuration = WebSocketServerConfiguration(port: 0)
        configuration.connection.inboundBufferedEvents = 4
        let release = Mailbox<Void>()
        let seen = NIOLockedValueBox<[String]>([])
        let done = Mailbox<Void>()
        try await withServer(configuration, onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                socket.deliverEvents { event in
                    guard case .text(let text) = event else { return }
                    // The first message waits until the client has sent every other one.
                    if text == "0" { _ = await release.take() }
                    let count = seen.withLockedValue { $0.append(text); return $0.count }
                    if count == 200 { done.put(()) }
                }
            })
        }) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            for index in 0..<200 { try await socket.send(text: "\(index)") }
            release.put(())
            _ = await done.take()
            #expect(seen.withLockedValue { $0 } == (0..<200).map { "\($0)" })
            try await socket.close()
        }
    }

    @Test func aSecondWayOfTakingTheEventsIsRefused() async throws {
        let results = Mailbox<String>()
        try await withServer(onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                socket.deliverEvents { _ in }
                do {
                    try await socket.deliverEvents { _ in }.get()
                    results.put("second callback accepted")
                } catch {
                    results.put("\(error)")
                }
                do {
                    _ = try await socket.receive()
                    results.put("receive accepted")
                } catch {
                    results.put("\(error)")
                }
            })
        }) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            let expected = "\(WebSocketError.eventsTakenByCallback)"
            #expect(await results.take() == expected)
            #expect(await results.take() == expected)
            try await socket.close()
        }
    }

    @Test func shutdownClosesWith1001AndRunWaitsForTheCallbacksLastEvent() async throws {
        let closeSeen = NIOLockedValueBox(false)
        let server = try await WebSocketServer.bind(configuration: .init(host: "127.0.0.1", port: 0)) { _ in
            .accept(WebSocketAcceptance { socket in
                socket.deliverEvents { event in
                    if case .close = event { closeSeen.withLockedValue { $0 = true } }
                }
            })
        }
        let running = Task { await server.run() }
        let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(server.localAddress!.port!)/")
        let lastMessage = Task { try await socket.receive() }
        await server.shutdown()
        #expect(try await lastMessage.value == nil)
        #expect(await socket.closeInfo.code == .goingAway)
        // `run()` returns only once the callback has taken the close event.
        await running.value
        #expect(closeSeen.withLockedValue { $0 })
    }

    @Test func aBusyConnectionKeepsItsTaskAndAnIdleOneLosesIt() async throws {
        let served = Mailbox<WebSocket>()
        try await withServer(onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                served.put(socket)
                socket.deliverEvents { event in
                    if case .text(let text) = event { try? await socket.send(text: text) }
                }
            })
        }) { port in
            let client = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            let socket = try #require(await served.take())
            // Opened without an event: no task.
            #expect(try await !socket.callbackTaskExists)
            // The server's last event can be no older than this send.
            let sent = ContinuousClock.now
            try await client.send(text: "one")
            #expect(try await client.receive() == .text("one"))
            // Parked between events rather than ended, so that the next message needs no new task. The sweeper may
            // end it only after a whole idle second, so the check holds when it came sooner (on a loaded machine
            // the echo and the check can take longer, and then it says nothing).
            let parked = try await socket.callbackTaskExists
            if ContinuousClock.now - sent < .milliseconds(900) { #expect(parked) }
            // The loop's sweeper ends it after a whole idle period (one to two seconds).
            let deadline = ContinuousClock.now + .seconds(10)
            while try await socket.callbackTaskExists, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await !socket.callbackTaskExists)
            // The next event starts a new one.
            try await client.send(text: "two")
            #expect(try await client.receive() == .text("two"))
            try await client.close()
        }
    }
}
