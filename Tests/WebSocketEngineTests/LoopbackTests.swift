import NIOCore
import NIOHTTP1
import Testing
import WebSocketEngine
import WebSocketTestKit

@Suite("Server and client over loopback")
struct LoopbackTests {
    @Test func echoesTextAndBinary() async throws {
        try await withServer(onUpgrade: echoUpgrade) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/echo")
            try await socket.send(text: "hello")
            #expect(try await socket.receive() == .text("hello"))
            try await socket.send(binary: ByteBuffer(bytes: [0, 1, 2, 255]))
            #expect(try await socket.receive() == .binary(ByteBuffer(bytes: [0, 1, 2, 255])))
            let info = try await socket.close(code: .normalClosure, reason: "done")
            #expect(info.code == .normalClosure)
        }
    }

    @Test func echoesLargeCompressedMessages() async throws {
        let compression = WebSocketConfiguration(maxMessageSize: 4 << 20, compression: .init())
        try await withServer(.init(connection: compression), onUpgrade: echoUpgrade) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/", configuration: .init(connection: compression))
            #expect(socket.compression == PerMessageDeflateParameters())
            let large = String(repeating: "{\"temperature\": 21.5, \"unit\": \"C\"}, ", count: 50_000)
            try await socket.send(text: large)
            #expect(try await socket.receive() == .text(large))
            try await socket.close()
        }
    }

    @Test func sendsAndReceivesFragmentedMessages() async throws {
        try await withServer(onUpgrade: echoUpgrade) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            try await socket.sendFragmented(text: true) { writer in
                for part in ["one ", "two ", "three"] { try await writer.write(part) }
            }
            #expect(try await socket.receive() == .text("one two three"))
            try await socket.close()
        }
    }

    @Test func negotiatesSubprotocolsByServerPreferenceAndLetsTheApplicationOverride() async throws {
        var configuration = WebSocketServerConfiguration(subprotocols: ["chat.v2", "chat.v1"])
        configuration.port = 0
        let seen = Mailbox<[String]>()
        try await withServer(configuration, onUpgrade: { request in
            seen.put(request.offeredSubprotocols)
            if request.path == "/override" { return .accept(WebSocketAcceptance(subprotocol: "chat.v1") { _ in }) }
            if request.path == "/none" { return .accept(WebSocketAcceptance(omitSubprotocol: true) { _ in }) }
            return .accept(WebSocketAcceptance { _ in })
        }) { port in
            let offer = WebSocketClientConfiguration(subprotocols: ["chat.v1", "chat.v2"])
            let preferred = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/", configuration: offer)
            #expect(preferred.subprotocol == "chat.v2")
            #expect(await seen.take() == ["chat.v1", "chat.v2"])
            let overridden = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/override", configuration: offer)
            #expect(overridden.subprotocol == "chat.v1")
            let omitted = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/none", configuration: offer)
            #expect(omitted.subprotocol == nil)
            let unmatched = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/", configuration: .init(subprotocols: ["other"]))
            #expect(unmatched.subprotocol == nil)
        }
    }

    @Test func bothSidesSeeCloseCodesAndReasons() async throws {
        let serverSaw = Mailbox<WebSocketCloseInfo>()
        try await withServer(onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                for await event in socket.events {
                    if case .close(let info) = event { serverSaw.put(info) }
                }
            })
        }) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            let info = try await socket.close(code: WebSocketCloseCode(4001), reason: "bye now")
            // The client started the close: its info is its own code and reason (the server echoed the code).
            #expect(info == WebSocketCloseInfo(code: WebSocketCloseCode(4001), reason: "bye now", initiatedLocally: true))
            #expect(await serverSaw.take() == WebSocketCloseInfo(code: WebSocketCloseCode(4001), reason: "bye now", initiatedLocally: false))
        }
    }

    @Test func serverClosingIsSeenByTheClient() async throws {
        try await withServer(onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                try await socket.close(code: .goingAway, reason: "maintenance")
            })
        }) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            var events: [WebSocketEvent] = []
            for await event in socket.events { events.append(event) }
            #expect(events == [.close(WebSocketCloseInfo(code: .goingAway, reason: "maintenance", initiatedLocally: false))])
        }
    }

    @Test func pingsAreAnsweredAndUnsolicitedPongsAccepted() async throws {
        try await withServer(onUpgrade: echoUpgrade) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            try await socket.pong(ByteBuffer(string: "unsolicited"))
            try await socket.ping(ByteBuffer(string: "marco"))
            var iterator = socket.events.makeAsyncIterator()
            #expect(await iterator.next() == .pong(ByteBuffer(string: "marco")))
            try await socket.close()
        }
    }

    @Test func aDroppedConnectionIsReportedAs1006() async throws {
        let serverSaw = Mailbox<WebSocketCloseInfo>()
        try await withServer(onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in serverSaw.put(await socket.closeInfo) })
        }) { port in
            // A client that completes the handshake and then just disconnects.
            let reply = try await RawTCP.exchange(port: port, send: upgradeRequest() + "\u{88}", until: "\r\n\r\n")
            #expect(reply.hasPrefix("HTTP/1.1 101"))
            #expect(await serverSaw.take() == WebSocketCloseInfo(code: .abnormalClosure, initiatedLocally: false))
        }
    }

    @Test func protocolViolationsCloseWithASpecificCode() async throws {
        try await withServer(onUpgrade: echoUpgrade) { port in
            // An unmasked text frame from a client.
            let request = Array(upgradeRequest().utf8) + [0x81, 0x02, 0x68, 0x69]
            let reply = try await RawTCP.exchange(port: port, send: request)
            let frameStart = reply.firstRange(of: Array("\r\n\r\n".utf8))!.upperBound
            let closeFrame = Array(reply[frameStart...])
            #expect(closeFrame.prefix(4) == [0x88, UInt8(2 + "client frame is not masked".utf8.count), 0x03, 0xEA])
            #expect(String(decoding: closeFrame.dropFirst(4), as: UTF8.self) == "client frame is not masked")
        }
    }

    @Test func idleConnectionsAreReported() async throws {
        let sawIdle = Mailbox<Bool>()
        var configuration = WebSocketServerConfiguration()
        configuration.connection.idleTimeout = .milliseconds(100)
        try await withServer(configuration, onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                for await event in socket.events where event == .idleTimeout {
                    sawIdle.put(true)
                    try await socket.close(code: .goingAway, reason: "idle")
                }
            })
        }) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            #expect(await sawIdle.take() == true)
            #expect(await socket.closeInfo == WebSocketCloseInfo(code: .goingAway, reason: "idle", initiatedLocally: false))
        }
    }

    @Test func keepaliveClosesAPeerThatNeverAnswersPings() async throws {
        var configuration = WebSocketServerConfiguration()
        configuration.connection.keepalive = .init(interval: .milliseconds(50), timeout: .milliseconds(100))
        try await withServer(configuration, onUpgrade: echoUpgrade) { port in
            // A raw client that completes the handshake but never reads or answers a ping.
            let reply = try await RawTCP.exchange(port: port, send: Array(upgradeRequest().utf8))
            let frames = Array(reply[reply.firstRange(of: Array("\r\n\r\n".utf8))!.upperBound...])
            #expect(frames.first == 0x89)  // at least one ping went out
            let reason = Array("keepalive pong timeout".utf8)
            #expect(frames.suffix(reason.count + 4) == [0x88, UInt8(reason.count + 2), 0x03, 0xE9] + reason)
        }
    }

    @Test func sendsWaitForASlowReaderByDefault() async throws {
        var configuration = WebSocketServerConfiguration()
        configuration.connection.outboundQueueSize = 64 * 1024
        let sent = Mailbox<Int>()
        try await withServer(configuration, onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                // 32 MiB against a 64 KiB queue: every send that finds the queue full waits for the reader.
                for _ in 0..<512 { try await socket.send(binary: ByteBuffer(repeating: 3, count: 64 * 1024)) }
                sent.put(512)
            })
        }) { port in
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            var received = 0
            while case .binary(let buffer)? = try await socket.receive() {
                #expect(buffer.readableBytes == 64 * 1024)
                received += 1
            }
            #expect(received == 512)
            #expect(await sent.take() == 512)
        }
    }

    @Test func failingSendsWhenTheOutboundQueueIsFull() async throws {
        var configuration = WebSocketServerConfiguration()
        configuration.connection.outboundQueueSize = 64 * 1024
        configuration.connection.outboundBackpressure = .fail
        // The server closes once its queue is full; the client reads everything only afterwards, which can take
        // seconds when every suite runs at once: a short close timeout would cut the connection before then.
        configuration.connection.closeTimeout = .seconds(60)
        let outcome = Mailbox<(sent: Int, error: WebSocketError?)>()
        try await withServer(configuration, onUpgrade: { _ in
            .accept(WebSocketAcceptance { socket in
                let chunk = ByteBuffer(repeating: 7, count: 16 * 1024)
                for index in 0..<20_000 {
                    do {
                        try await socket.send(binary: chunk)
                    } catch let error as WebSocketError {
                        outcome.put((index, error))
                        return
                    }
                }
                outcome.put((20_000, nil))
            })
        }) { port in
            // The client does not read until the server reports a full queue.
            let socket = try await WebSocketClient.connect(to: "ws://127.0.0.1:\(port)/")
            let result = await outcome.take()!
            #expect(result.error == .outboundQueueFull(limit: 64 * 1024))
            #expect(result.sent > 4 && result.sent < 20_000)
            var received = 0
            while case .binary? = try await socket.receive() { received += 1 }
            #expect(received >= result.sent - 1)
        }
    }
}
