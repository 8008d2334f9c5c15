import GatewayCore
import Testing

@Suite("Route templates")
struct RouteTests {
    @Test func matchesParametersAndDecodesThem() throws {
        let template = try RouteTemplate("/chat/{room}/live")
        #expect(template.match("/chat/lobby%20one/live") == ["room": "lobby one"])
        #expect(template.match("/chat/lobby") == nil)
        #expect(template.match("/chat/a/b/live") == nil)
        #expect(template.parameterNames == ["room"])
    }

    @Test func refusesBrokenTemplates() {
        for bad in ["devices", "/devices/{", "/devices/{}", "/a/{x}/b/{x}", "/a/x{y}"] {
            #expect(throws: GatewayConfigurationError.self) { try RouteTemplate(bad) }
        }
    }

    @Test func expandsGroupTemplates() {
        #expect(RouteTemplate.expand("room:{room}", with: ["room": "42"]) == "room:42")
        #expect(RouteTemplate.expand("static", with: ["room": "42"]) == "static")
    }

    @Test func socketIDsAreUniqueAndMatchThePattern() {
        let ids = Set((0..<1000).map { _ in SocketID.random() })
        #expect(ids.count == 1000)
        #expect(ids.allSatisfy { SocketID.isValid($0.rawValue) && $0.rawValue.count == 32 })
        #expect(SocketID(validating: "abc-DEF=09") != nil)
        #expect(SocketID(validating: "no_underscores") == nil)
        #expect(SocketID(validating: "") == nil)
        #expect(SocketID(validating: String(repeating: "a", count: 129)) == nil)
    }
}
