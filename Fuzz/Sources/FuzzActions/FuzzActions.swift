import FuzzSupport
import GatewayCore
import WebSocketEngine

// The action parser shared by the management API and webhook answers (GatewayAction+Fields.swift, JSONValue.swift):
// the input is JSON text, read as a management API request body (with the fields that endpoint allows and the
// action its path implies) and as a webhook answer (`{"actions": [...]}`, each action with the event's socket as
// its default target).
//
// Input: one option byte, then the JSON text.
//   byte 0: which endpoint's body it is (n mod 4): any action (all fields), a message to one socket, a broadcast,
//           a close.
//
// Checked: a parsed action can be sent on the wire (a close code that may be sent, a reason of at most 123 bytes,
// a group without control characters).

let endpoints: [(action: String?, allowed: Set<GatewayAction.Field>)] = [
    (nil, Set(GatewayAction.Field.allCases)),
    ("send", [.message, .type]),
    ("broadcast", [.message, .type, .path, .route, .socketType, .groups, .exclude]),
    ("close", [.code, .reason]),
]

func run(_ input: inout FuzzInput) {
    let endpoint = endpoints[Int(input.byte() % 4)]
    let body = input.rest

    // A management API request body.
    if var fields = try? GatewayAction.Fields(json: body, allowed: endpoint.allowed) {
        if let action = endpoint.action {
            fields.action = action
            if action != "broadcast" { fields.socketID = "s1" }
        }
        if let action = try? GatewayAction(fields) { check(action) }
    }

    // A webhook answer.
    guard let document = try? JSONValue.parse(body) else { return }
    guard case .object(let object) = document, case .array(let list)? = object["actions"], object.count == 1 else { return }
    for value in list {
        guard let fields = try? GatewayAction.Fields(value) else { continue }
        if let action = try? GatewayAction(fields, defaultSocket: "s1") { check(action) }
    }
}

func check(_ action: GatewayAction) {
    switch action.operation {
    case .close(let code, let reason):
        fuzzCheck(code.isValidOnWire, "close code \(code.rawValue) cannot be sent")
        fuzzCheck(reason.utf8.count <= 123, "a close reason of \(reason.utf8.count) bytes")
    case .subscribe(let group), .unsubscribe(let group):
        fuzzCheck(!group.isEmpty && !group.unicodeScalars.contains { $0.properties.generalCategory == .control }, "group '\(group)'")
    case .send, .setAttribute, .removeAttribute:
        break
    }
    _ = action.name
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    run(&input)
    return 0
}
