import NIOConcurrencyHelpers
import NIOCore
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

    @Test func aConnectionAcceptedDuringShutdownIsClosedWith1001() async throws {
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
        await server.shutdown()
        release.put(())
        let socket = try await client.value
        #expect(try await socket.receive() == nil)
        #expect(await socket.closeInfo.code == .goingAway)
        // `run()` returns only after the connection's task ended, so a handler that ran has set the flag by now.
        await server.run()
        #expect(!handled.withLockedValue { $0 })
    }
}
