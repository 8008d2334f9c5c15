import GatewayCore
import NIOCore
import Testing
import GatewayTestKit
import WebSocketEngine
import WebSocketTestKit

/// Implements callbacks only (the default `serve`, driven without a parked task): records what it sees, echoes
/// text, and takes its time opening.
private struct SlowOpeningHandler: GatewayHandler {
    let seen: Mailbox<String>
    let openMayFinish: Mailbox<Void>

    func onOpen(_ context: GatewayContext) async {
        _ = await self.openMayFinish.take()
        self.seen.put("open")
    }

    func onText(_ context: GatewayContext, _ text: String) async {
        self.seen.put("text \(text)")
        try? await context.send(.text(text))
    }

    func onClose(_ context: GatewayContext, code: UInt16, reason: String) async {
        // Still registered while the handler hears of the close; gone once it has.
        let registered = (try? context.gateway.info(context.connection.id.rawValue)) != nil
        self.seen.put("close \(code) \(reason) registered=\(registered)")
    }
}

/// Answers texts starting with "now" at once (``GatewayHandler/handleNow(_:_:)``) and leaves the others to `onText`.
private struct PartlyImmediateHandler: GatewayHandler {
    let seen: Mailbox<String>

    func handleNow(_ event: GatewayEvent, _ context: GatewayContext) -> Bool {
        guard case .text(let text) = event.kind, text.hasPrefix("now") else { return false }
        self.seen.put("now \(text)")
        return (try? context.connection.sendNow(.text(text))) == true
    }

    func onText(_ context: GatewayContext, _ text: String) async {
        self.seen.put("callback \(text)")
        try? await context.send(.text(text))
    }

    func onClose(_ context: GatewayContext, code: UInt16, reason: String) async {
        self.seen.put("close \(code)")
    }
}

@Suite("Gateway: callback handlers without a parked task")
struct CallbackHandlerTests {
    @Test func callbacksComeInOrderFromOpenToCloseAndTheConnectionIsThenUnregistered() async throws {
        let seen = Mailbox<String>()
        let openMayFinish = Mailbox<Void>()
        let route = try GatewayRoute(path: "/slow", handler: SlowOpeningHandler(seen: seen, openMayFinish: openMayFinish))
        try await withGateway(GatewayConfiguration(routes: [route])) { gateway, port in
            let socket = try await connect(port, "/slow")
            // Sent while the handler is still in `onOpen`: they wait for it, in order.
            for text in ["one", "two"] { try await socket.send(text: text) }
            openMayFinish.put(())
            #expect(try await socket.receive() == .text("one"))
            #expect(try await socket.receive() == .text("two"))
            #expect(gateway.list().count == 1)
            try await socket.close(code: .normalClosure, reason: "done")
            var lines: [String] = []
            for _ in 0..<4 { lines.append(await seen.take() ?? "") }
            #expect(lines == ["open", "text one", "text two", "close 1000 done registered=true"])
            // The gateway unregisters the connection after its handler heard of the close.
            try await within(5, "the connection to leave the registry") {
                while !gateway.list().isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            }
        }
    }

    @Test func aRateLimitedCallbackConnectionStillGetsItsEventsAndErrors() async throws {
        let seen = Mailbox<String>()
        let openMayFinish = Mailbox<Void>()
        openMayFinish.put(())
        let route = try GatewayRoute(
            path: "/limited", handler: SlowOpeningHandler(seen: seen, openMayFinish: openMayFinish),
            rateLimit: RateLimit(messagesPerSecond: 0.01, burst: 1, onExceed: .close))
        try await withGateway(GatewayConfiguration(routes: [route])) { _, port in
            let socket = try await connect(port, "/limited")
            try await socket.send(text: "first")
            try await socket.send(text: "second")
            #expect(try await socket.receive() == .text("first"))
            // The second message is over the limit: the gateway closes with 1008.
            #expect(try await socket.receive() == nil)
            #expect(await socket.closeInfo.code == .policyViolation)
            #expect(await seen.take() == "open")
            #expect(await seen.take() == "text first")
            #expect(await seen.take()?.hasPrefix("close 1008") == true)
        }
    }

    @Test func aHandlerAnswersSomeEventsAtOnceAndTheRestInItsCallbacksInOrder() async throws {
        let seen = Mailbox<String>()
        let route = try GatewayRoute(path: "/mixed", handler: PartlyImmediateHandler(seen: seen))
        try await withGateway(GatewayConfiguration(routes: [route])) { gateway, port in
            let socket = try await connect(port, "/mixed")
            let texts = ["now 1", "later 1", "now 2", "now 3", "later 2", "now 4"]
            for text in texts { try await socket.send(text: text) }
            for text in texts { #expect(try await socket.receive() == .text(text)) }
            // Messages answered at once are counted like the others.
            let info = try gateway.info(try #require(gateway.list().first).rawValue)
            #expect(info.messagesIn == 6 && info.messagesOut == 6)
            try await socket.close()
            var lines: [String] = []
            for _ in 0..<7 { lines.append(await seen.take() ?? "") }
            #expect(lines == texts.map { $0.hasPrefix("now") ? "now \($0)" : "callback \($0)" } + ["close 1000"])
        }
    }
}
