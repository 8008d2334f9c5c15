import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1
import Testing
import GatewayTestKit
import WebSocketEngine
import WebSocketTestKit

@Suite("Gateway: routes, registry and operations over loopback")
struct GatewayOperationsTests {
    static func configuration(_ routes: GatewayRoute...) -> GatewayConfiguration {
        GatewayConfiguration(routes: routes)
    }

    @Test func routesByTemplateWithBasePathAndRefusesUnknownPaths() async throws {
        var configuration = Self.configuration(
            try GatewayRoute(path: "/devices/{id}", handler: EchoHandler()),
            try GatewayRoute(path: "/devices/status", handler: EchoHandler(), groups: ["status"]))
        configuration.basePath = "/ws"
        try await withGateway(configuration) { gateway, port in
            let device = try await connect(port, "/ws/devices/7?fw=1.2")
            let status = try await connect(port, "/ws/devices/status")
            try await device.send(text: "ping")
            #expect(try await device.receive() == .text("ping"))
            let ids = gateway.list(ConnectionFilter(route: "/ws/devices/{id}"))
            #expect(ids.count == 1)
            let info = try gateway.info(ids[0].rawValue)
            #expect(info.route == "/ws/devices/{id}" && info.path == "/ws/devices/7")
            #expect(info.parameters == ["id": "7", "fw": "1.2"] && info.queryString == "fw=1.2")
            #expect(info.uri == "ws://127.0.0.1:\(port)/ws/devices/7?fw=1.2")
            #expect(info.socketType == .inbound && info.state == "open" && !info.secure)
            // The request's headers, by lowercased name.
            #expect(info.headers["sec-websocket-version"] == "13" && info.headers["upgrade"]?.lowercased() == "websocket")
            #expect(info.messagesIn == 1 && info.messagesOut == 1 && info.bytesIn == 4 && info.bytesOut == 4)
            #expect(gateway.list(ConnectionFilter(groups: ["status"])).count == 1)
            await #expect(throws: WebSocketClientError.self) { _ = try await connect(port, "/devices/7") }
            do {
                _ = try await connect(port, "/ws/elsewhere")
            } catch let error as WebSocketClientError {
                #expect(error.status == .notFound && error.responseBody.map { String(buffer: $0) } == "no route for /ws/elsewhere\n")
            }
            try await device.close()
            try await status.close()
        }
    }

    @Test func upgradeHookSeesTheRequestAndSetsAttributesGroupsAndSubprotocol() async throws {
        let seen = Mailbox<GatewayUpgradeRequest>()
        let route = try GatewayRoute(
            path: "/chat/{room}", handler: EchoHandler(), subprotocols: ["chat.v2", "chat.v1"], groups: ["room:{room}"],
            upgradeHook: { request in
                seen.put(request)
                guard request.headers["authorization"].first == "Bearer good" else {
                    return .reject(status: .unauthorized, headers: ["WWW-Authenticate": "Bearer"], body: "bad token")
                }
                return .accept(GatewayAcceptance(headers: ["X-Welcome": "1"], attributes: ["user": "ada"], groups: ["users"]))
            })
        try await withGateway(Self.configuration(route)) { gateway, port in
            do {
                _ = try await connect(port, "/chat/lobby", .init(headers: ["Authorization": "Bearer bad"]))
                Issue.record("expected a refusal")
            } catch let error as WebSocketClientError {
                #expect(error.status == .unauthorized && error.responseHeaders?["www-authenticate"] == ["Bearer"])
                #expect(error.responseBody.map { String(buffer: $0) } == "bad token\n")
            }
            _ = await seen.take()
            let socket = try await connect(port, "/chat/lobby?lang=en", .init(headers: ["Authorization": "Bearer good"], subprotocols: ["chat.v1", "chat.v2"]))
            let request = await seen.take()!
            #expect(request.route == "/chat/{room}" && request.pathParameters == ["room": "lobby"] && request.queryParameters == ["lang": "en"])
            #expect(request.remoteAddress?.ipAddress == "127.0.0.1" && request.subprotocol == "chat.v2")
            #expect(socket.subprotocol == "chat.v2")
            let info = try gateway.info(gateway.list()[0].rawValue)
            #expect(info.attributes == ["user": "ada"] && info.groups == ["room:lobby", "users"] && info.subprotocol == "chat.v2")
            #expect(gateway.groups() == [GroupInfo(name: "room:lobby", members: 1), GroupInfo(name: "users", members: 1)])
            try await socket.close()
        }
    }

    @Test func sendInfoListCloseAndTheirErrors() async throws {
        var configuration = Self.configuration(try GatewayRoute(path: "/a", handler: EchoHandler()), try GatewayRoute(path: "/b", handler: EchoHandler()))
        configuration.server.connection.maxMessageSize = 1024
        try await withGateway(configuration) { gateway, port in
            let a = try await connect(port, "/a")
            let b = try await connect(port, "/b")
            let idA = gateway.list(ConnectionFilter(path: "/a"))[0].rawValue
            try await gateway.send(idA, .text("from the gateway"))
            #expect(try await a.receive() == .text("from the gateway"))
            #expect(gateway.list().count == 2 && gateway.list(ConnectionFilter(socketType: .outbound)).isEmpty)
            await #expect(throws: GatewayError.noSuchSocket("nosuchid")) { try await gateway.send("nosuchid", .text("x")) }
            await #expect(throws: GatewayError.invalidSocketID("bad id!")) { try await gateway.send("bad id!", .text("x")) }
            await #expect(throws: GatewayError.messageTooLarge(size: 2000, limit: 1024)) {
                try await gateway.send(idA, .binary(ByteBuffer(repeating: 0, count: 2000)))
            }
            try await gateway.close(idA, code: WebSocketCloseCode(4000), reason: "kicked")
            #expect(await a.closeInfo == WebSocketCloseInfo(code: WebSocketCloseCode(4000), reason: "kicked", initiatedLocally: false))
            await #expect(throws: GatewayError.self) { try await gateway.send(idA, .text("late")) }
            #expect(await gateway.closeAll(ConnectionFilter(route: "/b"), code: .goingAway, reason: "maintenance") == 1)
            #expect(await b.closeInfo == WebSocketCloseInfo(code: .goingAway, reason: "maintenance", initiatedLocally: false))
        }
    }

    @Test func groupsCanBeJoinedAndLeft() async throws {
        try await withGateway(Self.configuration(try GatewayRoute(path: "/g", handler: EchoHandler()))) { gateway, port in
            let socket = try await connect(port, "/g")
            let id = gateway.list()[0].rawValue
            try await gateway.subscribe(id, to: "news")
            try await gateway.subscribe(id, to: "sports")
            #expect(gateway.groups() == [GroupInfo(name: "news", members: 1), GroupInfo(name: "sports", members: 1)])
            let result = await gateway.broadcast(.text("headline"), to: ConnectionFilter(groups: ["news"]))
            #expect(result == BroadcastResult(delivered: 1, failures: []))
            #expect(try await socket.receive() == .text("headline"))
            try await gateway.unsubscribe(id, from: "news")
            #expect(gateway.groups() == [GroupInfo(name: "sports", members: 1)])
            #expect(await gateway.broadcast(.text("more"), to: ConnectionFilter(groups: ["news"])).delivered == 0)
            await #expect(throws: GatewayError.noSuchSocket("missing")) { try await gateway.subscribe("missing", to: "news") }
            try await socket.close()
        }
    }

    @Test func broadcastHandlerFansOutWithinTheRoomGroup() async throws {
        let configuration = Self.configuration(
            try GatewayRoute(path: "/chat/{room}", handler: BroadcastHandler(), groups: ["room:{room}"]),
            try GatewayRoute(path: "/quiet/{room}", handler: BroadcastHandler(excludeSender: true), groups: ["room:{room}"]))
        try await withGateway(configuration) { gateway, port in
            let alice = try await connect(port, "/chat/1")
            let bob = try await connect(port, "/chat/1")
            let carol = try await connect(port, "/chat/2")
            let dave = try await connect(port, "/quiet/1")
            try await alice.send(text: "hello room 1")
            for socket in [alice, bob, dave] {
                #expect(try await socket.receive() == .text("hello room 1"))
            }
            try await dave.send(text: "from dave")
            #expect(try await alice.receive() == .text("from dave"))
            #expect(try await bob.receive() == .text("from dave"))
            try await carol.send(text: "alone")
            #expect(try await carol.receive() == .text("alone"))
            for socket in [alice, bob, carol, dave] { try await socket.close() }
        }
    }

    @Test func eventRecordsCarryTheInfoFields() async throws {
        let events = Mailbox<GatewayEvent>()
        struct Recorder: GatewayHandler {
            let events: Mailbox<GatewayEvent>
            func serve(_ context: GatewayContext, events: GatewayEvents) async {
                for await event in events { self.events.put(event) }
            }
        }
        try await withGateway(Self.configuration(try GatewayRoute(path: "/r/{id}", handler: Recorder(events: events)))) { gateway, port in
            let socket = try await connect(port, "/r/9")
            try await socket.send(binary: ByteBuffer(bytes: [1, 2, 3]))
            try await socket.close(code: WebSocketCloseCode(4001), reason: "done")
            let open = await events.take()!
            let data = await events.take()!
            let close = await events.take()!
            let encoder = JSONEncoder()
            let json = try JSONSerialization.jsonObject(with: encoder.encode(data.record)) as! [String: Any]
            #expect(json["type"] as? String == "data" && json["message_type"] as? String == "data-binary")
            #expect(json["message"] as? String == "AQID")
            #expect(json["socket_id"] as? String == open.connection.id.rawValue)
            #expect((json["parameters"] as? [String: String]) == ["id": "9"])
            for key in ["socket_type", "uri", "route", "path", "headers", "query_string", "secure", "remote_address", "local_address", "groups", "attributes", "connected_at", "last_active_at", "state", "timestamp"] {
                #expect(json[key] != nil, "missing \(key)")
            }
            #expect(open.record.type == "open")
            let closeRecord = close.record
            #expect(closeRecord.type == "close" && closeRecord.closeCode == 4001 && closeRecord.closeReason == "done")
        }
    }
}
