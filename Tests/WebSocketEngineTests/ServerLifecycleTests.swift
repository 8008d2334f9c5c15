import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import WebSocketEngine
import WebSocketTestKit

@Suite("Where and when the server runs its decisions and handlers")
struct ServerLifecycleTests {
    @Test func decisionsAndHandlersRunOnTheConnectionsEventLoop() async throws {
        let onLoop = Mailbox<Bool>()
        try await withServer(onUpgrade: { _ in
            // The decision's task prefers the connection's event loop: it runs on one of the group's threads.
            onLoop.put(MultiThreadedEventLoopGroup.currentEventLoop != nil)
            return .accept(WebSocketAcceptance { socket in
                onLoop.put(socket.eventLoop.inEventLoop)
                while let message = try await socket.receive() { try await socket.send(message) }
            })
        }) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            #expect(await onLoop.take() == true)
            #expect(await onLoop.take() == true)
            try await socket.send(text: "on the loop")
            #expect(try await socket.receive() == .text("on the loop"))
            try await socket.close()
        }
    }

    @Test func connectionsAreServedFromBindAndRunWaitsForTheirHandlers() async throws {
        let server = try await WebSocketServer.bind(configuration: .init(port: 0), onUpgrade: echoUpgrade)
        let port = server.localAddress!.port!
        // No `run()` yet: the connection is served all the same.
        let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
        try await socket.send(text: "before run")
        #expect(try await socket.receive() == .text("before run"))
        let running = Task { await server.run() }
        // The client reads on, so it answers the server's close at once.
        let lastMessage = Task { try await socket.receive() }
        await server.shutdown()
        // Shutting down closed the connection with 1001, its handler returned, and so did `run()`.
        #expect(try await lastMessage.value == nil)
        #expect(await socket.closeInfo.code == .goingAway)
        await running.value
    }

    @Test func aConnectionAcceptedDuringShutdownGetsTheShutdownsCodeAndReason() async throws {
        let deciding = Mailbox<Void>()
        let release = Mailbox<Void>()
        let handled = NIOLockedValueBox(false)
        let server = try await WebSocketServer.bind(configuration: .init(port: 0)) { _ in
            deciding.put(())
            _ = await release.take()
            return .accept(WebSocketAcceptance { _ in handled.withLockedValue { $0 = true } })
        }
        let port = server.localAddress!.port!
        let client = Task { try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/") }
        _ = await deciding.take()
        await server.shutdown(code: .tryAgainLater, reason: "maintenance")
        release.put(())
        let socket = try await client.value
        #expect(try await socket.receive() == nil)
        // Its 101 left after the shutdown began; it is closed like the others, not with a reason of its own.
        #expect(await socket.closeInfo == WebSocketCloseInfo(code: .tryAgainLater, reason: "maintenance", initiatedLocally: false))
        // `run()` returns only after the connection's task ended, so a handler that ran has set the flag by now.
        await server.run()
        #expect(!handled.withLockedValue { $0 })
    }

    @Test func runWaitsForAPendingDecisionWhichTheHandshakeTimeoutCancels() async throws {
        var configuration = WebSocketServerConfiguration(port: 0)
        // Long enough for the request to arrive on a loaded machine (a 408 would leave no decision to wait for).
        configuration.handshakeTimeout = .seconds(2)
        let deciding = Mailbox<Void>()
        let cancelled = NIOLockedValueBox<Bool?>(nil)
        let server = try await WebSocketServer.bind(configuration: configuration) { _ in
            deciding.put(())
            // Never decides on its own: only the cancellation of its task ends the wait.
            try? await Task.sleep(for: .seconds(600))
            cancelled.withLockedValue { $0 = Task.isCancelled }
            return .reject(.init(status: .unauthorized, reason: "too late"))
        }
        let port = server.localAddress!.port!
        let client = Task { try? await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/") }
        _ = try await within(20, "the decision to start") { await deciding.take() }
        await server.shutdown()
        // The listener is closed and no connection is served, but the decision's task still runs: `run()` waits
        // for it, and the handshake timeout cancels it.
        try await within(20, "run() to return") { await server.run() }
        #expect(cancelled.withLockedValue { $0 } == true)
        _ = try await within(20, "the client's refusal") { await client.value }
    }

    @Test func aSynchronousDecisionRunsOnTheLoopWithoutATaskAndNilFallsBackToTheHook() async throws {
        let decidedNow = Mailbox<Bool>()
        let hookRan = Mailbox<String>()
        let server = try await WebSocketServer.bind(
            configuration: .init(host: "127.0.0.1", port: 0),
            decideNow: { request in
                // On one of the group's threads, and not inside any task.
                decidedNow.put(MultiThreadedEventLoopGroup.currentEventLoop != nil && withUnsafeCurrentTask { $0 == nil })
                switch request.path {
                case "/now":
                    return .accept(WebSocketAcceptance { socket in
                        socket.deliverEvents { event in
                            if case .text(let text) = event { try? await socket.send(text: text) }
                        }
                    })
                case "/refuse":
                    return .reject(.init(status: .forbidden, reason: "refused on the spot"))
                default:
                    return nil
                }
            },
            onUpgrade: { request in
                hookRan.put(request.path)
                return .reject(.init(status: .notFound, reason: "decided later"))
            })
        let port = server.localAddress!.port!
        // A frame in the same write as the request: it waits for the upgrade, then is echoed.
        var request = Array(upgradeRequest(path: "/now").utf8)
        request += text("hi").readableBytesView
        let reply = try await RawTCP.exchange(port: port, send: request, until: [0x81, 0x02, 0x68, 0x69])
        #expect(String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.1 101"))
        #expect(reply.suffix(4) == [0x81, 0x02, 0x68, 0x69])
        #expect(await decidedNow.take() == true)
        let refused = try await RawTCP.exchange(port: port, send: upgradeRequest(path: "/refuse"))
        #expect(refused.hasPrefix("HTTP/1.1 403") && refused.hasSuffix("refused on the spot\n"))
        #expect(await decidedNow.take() == true)
        let later = try await RawTCP.exchange(port: port, send: upgradeRequest(path: "/later"))
        #expect(later.hasPrefix("HTTP/1.1 404") && later.hasSuffix("decided later\n"))
        #expect(await decidedNow.take() == true)
        #expect(await hookRan.take() == "/later")
        await server.shutdown()
        await server.run()
    }
}
