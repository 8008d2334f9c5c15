import NIOCore
import Testing
import WebSocketEngine
import WebSocketTestKit

/// Admission limits over real sockets: connections from several loopback addresses (127.0.0.x) play several
/// clients; silent connections play slowloris.
@Suite("Admission limits over loopback")
struct AdmissionLoopbackTests {
    private func server(_ limits: WebSocketAdmissionLimits, events: Mailbox<WebSocketServerEvent>? = nil) -> WebSocketServerConfiguration {
        var configuration = WebSocketServerConfiguration(port: 0, handshakeTimeout: .seconds(60), admission: limits)
        configuration.onEvent = { event in events?.put(event) }
        return configuration
    }

    /// The head of the answer to an upgrade from `source`.
    private func upgrade(_ port: Int, from source: String = "127.0.0.1") async throws -> String {
        try await RawTCP.exchange(port: port, from: source, send: upgradeRequest(), until: "\r\n\r\n")
    }

    /// Upgrades from `source` until the answer starts with `status` (the server counts a held connection on its
    /// own event loop, after the client saw it connected); returns that answer.
    private func eventually(_ status: String, _ port: Int, from source: String = "127.0.0.1") async throws -> String {
        try await within(20, "an answer \(status)") {
            while true {
                let answer = try await self.upgrade(port, from: source)
                if answer.hasPrefix("HTTP/1.1 \(status)") { return answer }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test func silentConnectionsFromOneAddressCannotStarveOthers() async throws {
        let events = Mailbox<WebSocketServerEvent>()
        try await withServer(self.server(.init(maxPendingHandshakes: nil, maxPendingHandshakesPerAddress: 2), events: events), onUpgrade: echoUpgrade) { port in
            let silent = [try await RawTCP.hold(port: port), try await RawTCP.hold(port: port, send: Array("GET / HTTP/1.1\r\n".utf8))]
            let refused = try await self.eventually("429", port)
            #expect(refused.contains("Retry-After: 5"))
            #expect(refused.contains("too many handshakes in progress from this address (2)"))
            let event = try await within(5, "the refusal event") { await events.take() }
            guard case .refused(.pendingHandshakesPerAddress, let address) = event else {
                Issue.record("unexpected event \(String(describing: event))")
                return
            }
            #expect(address?.ipAddress == "127.0.0.1")
            // Another client is served meanwhile.
            #expect(try await self.upgrade(port, from: "127.0.0.2").hasPrefix("HTTP/1.1 101"))
            for channel in silent { try await channel.close() }
            _ = try await self.eventually("101", port)
        }
    }

    @Test func atTheTotalCapANewClientEvictsTheOldestPartialRequest() async throws {
        let events = Mailbox<WebSocketServerEvent>()
        try await withServer(self.server(.init(maxPendingHandshakes: 2, maxPendingHandshakesPerAddress: nil), events: events), onUpgrade: echoUpgrade) { port in
            let oldest = try await RawTCP.hold(port: port, from: "127.0.0.2", send: Array("GET / HTTP/1.1\r\n".utf8))
            try await Task.sleep(for: .milliseconds(100))
            let newer = try await RawTCP.hold(port: port, from: "127.0.0.3")
            // Once both have been at it for over a second (the least age that may be evicted, counted from when the
            // server saw them: later than here on a loaded machine), a real client gets in; before, it gets 503.
            try await Task.sleep(for: .milliseconds(1_200))
            _ = try await self.eventually("101", port, from: "127.0.0.4")
            try await within(10, "the oldest partial request closed") { try await oldest.closeFuture.get() }
            let address = try await within(5, "the eviction event") { () -> SocketAddress? in
                while let event = await events.take() {
                    switch event {
                    case .evicted(let address): return address
                    case .refused(.pendingHandshakes, _): continue
                    default: Issue.record("unexpected event \(event)")
                    }
                }
                return nil
            }
            #expect(address?.ipAddress == "127.0.0.2")
            #expect(newer.isActive)
            try await newer.close()
        }
    }

    @Test func openConnectionsPerAddressAreCappedUntilOneCloses() async throws {
        try await withServer(self.server(.init(maxConnectionsPerAddress: 1)), onUpgrade: echoUpgrade) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            let refused = try await self.eventually("429", port)
            #expect(refused.contains("too many connections from this address (1)"))
            #expect(try await self.upgrade(port, from: "127.0.0.2").hasPrefix("HTTP/1.1 101"))
            _ = try await socket.close()
            _ = try await self.eventually("101", port)
        }
    }

    @Test func newConnectionsPerAddressAreRateLimited() async throws {
        let limits = WebSocketAdmissionLimits(handshakeRatePerAddress: .init(perSecond: 0.001, burst: 2))
        try await withServer(self.server(limits), onUpgrade: echoUpgrade) { port in
            #expect(try await self.upgrade(port).hasPrefix("HTTP/1.1 101"))
            #expect(try await self.upgrade(port).hasPrefix("HTTP/1.1 101"))
            let refused = try await self.upgrade(port)
            #expect(refused.hasPrefix("HTTP/1.1 429") && refused.contains("Retry-After: 1"))
            #expect(refused.contains("too many new connections from this address"))
            #expect(try await self.upgrade(port, from: "127.0.0.2").hasPrefix("HTTP/1.1 101"))
        }
    }
}
