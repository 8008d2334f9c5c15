import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import WebSocketEngine

@Suite("Channel handler on a testing channel")
struct ChannelHandlerTests {
    /// A server-side connection on an embedded channel, with its handler active.
    private func makeSocket(_ configuration: WebSocketConfiguration = .init()) async throws -> (NIOAsyncTestingChannel, WebSocket) {
        let channel = NIOAsyncTestingChannel()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        let socket = try await channel.eventLoop.submit {
            let socket = try WebSocket.install(
                on: channel, role: .server, request: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"),
                subprotocol: nil, compression: nil, isSecure: false, configuration: configuration)
            try channel.pipeline.syncOperations.handler(type: WebSocketChannelHandler.self).activate()
            return socket
        }.get()
        return (channel, socket)
    }

    private func written(_ channel: NIOAsyncTestingChannel) async throws -> [(opcode: UInt8, payload: [UInt8])] {
        var frames: [(UInt8, [UInt8])] = []
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
            let frame = decodeFrame(buffer)!
            frames.append((frame.opcode, frame.payload))
        }
        return frames
    }

    @Test func answersPingsAtReadCompleteAndDeliversEvents() async throws {
        let (channel, socket) = try await self.makeSocket()
        try await channel.writeInbound(frame(9, [7, 7]))
        channel.pipeline.fireChannelReadComplete()
        await channel.testingEventLoop.run()
        let frames = try await self.written(channel)
        #expect(frames.count == 1 && frames[0].opcode == 10 && frames[0].payload == [7, 7])
        var iterator = socket.events.makeAsyncIterator()
        #expect(await iterator.next() == .ping(ByteBuffer(bytes: [7, 7])))
        _ = try? await channel.finish()
    }

    @Test func aProtocolErrorWaitsAtMostTheGracePeriodForTheApplication() async throws {
        let (channel, socket) = try await self.makeSocket()
        try await channel.writeInbound(frame(3))
        await channel.testingEventLoop.run()
        #expect(try await self.written(channel).isEmpty)
        await channel.testingEventLoop.advanceTime(by: .seconds(1))
        #expect(try await self.written(channel).map(\.opcode) == [8])
        #expect(!channel.isActive)
        withExtendedLifetime(socket) {}
    }

    @Test func anIdleReaderGetsTheCloseAtOnce() async throws {
        let (channel, socket) = try await self.makeSocket()
        let reader = Task {
            var events: [WebSocketEvent] = []
            for await event in socket.events { events.append(event) }
            return events
        }
        // Wait until the reader is parked in next() (the connection's own flag tells).
        while !socket.readerIsWaiting { await Task.yield() }
        try await channel.writeInbound(frame(8, closePayload(1000)))
        await channel.testingEventLoop.run()
        #expect(try await self.written(channel).map(\.opcode) == [8])
        #expect(!channel.isActive)
        #expect(await reader.value == [.close(WebSocketCloseInfo(code: .normalClosure, initiatedLocally: false))])
    }

    @Test func aProtocolErrorClosesOnlyAfterTheApplicationSawEarlierMessages() async throws {
        let (channel, socket) = try await self.makeSocket()
        var iterator = socket.events.makeAsyncIterator()  // the application is listening
        try await channel.writeInbound(text("first"))
        try await channel.writeInbound(frame(3))  // reserved opcode
        await channel.testingEventLoop.run()
        #expect(try await self.written(channel).isEmpty)  // nothing yet: the application has not taken "first"
        #expect(channel.isActive)
        #expect(await iterator.next() == .text("first"))
        try await socket.send(text: "answer to first")
        #expect(await iterator.next() == .error(.protocolViolation(code: .protocolError, reason: "reserved opcode 3")))
        await channel.testingEventLoop.run()
        let frames = try await self.written(channel)
        #expect(frames.map(\.opcode) == [1, 8])
        #expect(frames[1].payload == closePayload(1002, "reserved opcode 3"))
        #expect(!channel.isActive)
    }
}
