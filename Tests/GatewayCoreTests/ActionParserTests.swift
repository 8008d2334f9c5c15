import GatewayCore
import NIOCore
import NIOHTTP1
import Testing
import WebSocketEngine

@Suite("Gateway actions: the one JSON parser")
struct ActionParserTests {
    private func parse(_ json: String, socket: String? = nil) throws(GatewayError) -> GatewayAction {
        try GatewayAction(try GatewayAction.Fields(json: Array(json.utf8), allowed: Set(GatewayAction.Field.allCases)), defaultSocket: socket)
    }

    @Test func parsesEveryActionWithItsTarget() throws {
        #expect(try self.parse(#"{"action":"send","message":"hi"}"#, socket: "abc") == .send(.text("hi"), to: "abc"))
        #expect(try self.parse(#"{"action":"send","socket_id":"other","message":"aGk=","type":"data-binary"}"#, socket: "abc")
            == .send(.binary(ByteBuffer(string: "hi")), to: "other"))
        #expect(try self.parse(#"{"action":"close","code":4002,"reason":"done"}"#, socket: "abc")
            == .close("abc", code: WebSocketCloseCode(rawValue: 4002), reason: "done"))
        #expect(try self.parse(#"{"action":"subscribe","group":"vip"}"#, socket: "abc") == GatewayAction(.subscribe(group: "vip"), to: .socket("abc")))
        #expect(try self.parse(#"{"action":"set_attribute","name":"role","value":"admin","socket_id":"x"}"#)
            == GatewayAction(.setAttribute(name: "role", value: "admin"), to: .socket("x")))
        let broadcast = try self.parse(
            #"{"action":"broadcast","message":"m","path":"/chat","groups":["a","b"],"socket_type":"inbound","exclude":["abc"]}"#)
        let filter = ConnectionFilter(path: "/chat", groups: ["a", "b"], socketType: .inbound)
        #expect(broadcast == .broadcast(.text("m"), to: filter, excluding: [SocketID(validating: "abc")!]))
        #expect(try self.parse(#"{"action":"close_all","route":"/chat/{room}","code":1001}"#)
            == .closeAll(ConnectionFilter(route: "/chat/{room}"), code: .goingAway))
    }

    @Test(arguments: [
        (#"{"action":"broadcast","message":"m","socket_type":"inbond"}"#, "socket_type must be inbound, outbound or all, not 'inbond'"),
        (#"{"action":"send","message":"m","type":"data-json"}"#, "type must be data-text or data-binary, not 'data-json'"),
        (#"{"action":"send","message":"m","colour":"red"}"#, "unknown field 'colour': action 'send' takes message, socket_id, type"),
        (#"{"action":"teleport"}"#,
         "unknown action 'teleport': expected one of send, broadcast, close, close_all, subscribe, unsubscribe, set_attribute, remove_attribute"),
        (#"{"message":"m"}"#, "missing field 'action'"),
        (#"{"action":"send"}"#, "missing field 'message'"),
        (#"{"action":"send","message":5}"#, "field 'message' must be a string, not a number"),
        (#"{"action":"close","code":999}"#, "code must be a close code that may be sent (1000-1003, 1007-1014, 3000-4999), not '999'"),
        (#"{"action":"close","code":1000.5}"#, "field 'code' must be a whole number, not a number"),
        (#"{"action":"close","group":"g"}"#, "field 'group' does not apply to action 'close'"),
        (#"{"action":"subscribe","group":""}"#, "missing field 'group'"),
        (#"{"action":"send","message":"!!","type":"data-binary"}"#, "message is not valid base64 for data-binary"),
        (#"["send"]"#, "an action must be a JSON object, not an array"),
    ])
    func refusesMalformedActionsWithASpecificError(json: String, error: String) {
        #expect(throws: GatewayError.badRequest(error)) { try self.parse(json, socket: "abc") }
    }

    @Test func fieldsOutsideAnEndpointsSetAreRefused() throws {
        var fields = try GatewayAction.Fields(json: Array(#"{"message":"m","groups":["g"]}"#.utf8), allowed: [.message, .type])
        fields.action = "send"
        #expect(throws: GatewayError.badRequest("unknown field 'groups': action 'send' takes message, socket_id, type")) {
            try GatewayAction(fields, defaultSocket: "abc")
        }
    }

    @Test func errorKindsMapToOneHTTPStatusEach() {
        #expect(GatewayError.Kind.badRequest.httpStatus.code == 400)
        #expect(GatewayError.Kind.noSuchSocket.httpStatus.code == 404)
        #expect(GatewayError.Kind.socketNotOpen.httpStatus.code == 422)
        #expect(GatewayError.Kind.messageTooLarge.httpStatus.code == 413)
        #expect(GatewayError.Kind.slowConsumer.httpStatus.code == 503)
        #expect(GatewayError.Kind.connectFailed.httpStatus.code == 502)
        #expect(GatewayError.Kind.socketIDInUse.httpStatus.code == 409)
        #expect(Set(GatewayError.Kind.allCases.map(\.rawValue)).count == GatewayError.Kind.allCases.count)
    }
}
