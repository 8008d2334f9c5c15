import FoundationEssentials
import NIOCore
import WebSocketEngine

extension GatewayAction {
    /// A field of a JSON action. The management API's request bodies and query strings use the same names.
    public enum Field: String, Sendable, Hashable, CaseIterable {
        case action, message, type, code, reason, group, name, value, path, route, groups, exclude
        case socketID = "socket_id"
        case socketType = "socket_type"
    }

    /// The fields of one action, as received (from a JSON object, or from a request's path and query), before they
    /// are checked. ``GatewayAction/init(_:defaultSocket:)`` turns them into an action, with the same checks and
    /// the same error texts for every source.
    public struct Fields: Sendable, Hashable {
        /// `send`, `broadcast`, `close`, `close_all`, `subscribe`, `unsubscribe`, `set_attribute`, `remove_attribute`.
        public var action: String?
        public var socketID: String?
        public var message: String?
        /// `data-text` (the default) or `data-binary` (the message is base64).
        public var type: String?
        /// The close code, as text (a JSON number, or a query parameter).
        public var code: String?
        public var reason: String?
        public var group: String?
        /// An attribute's name.
        public var name: String?
        /// An attribute's value.
        public var value: String?
        public var path: String?
        public var route: String?
        /// `inbound`, `outbound` or `all`.
        public var socketType: String?
        public var groups: [String]?
        /// Socket ids a broadcast leaves out.
        public var exclude: [String]?
        /// Names that are not fields (or not allowed where they were sent): an error once the action is known.
        public var unknown: [String] = []

        /// No fields.
        public init() {}

        /// Reads a JSON object: each of the `allowed` fields with its JSON type; other names are kept in ``unknown``
        /// for ``GatewayAction/init(_:defaultSocket:)`` to refuse, naming the fields the action takes.
        public init(_ value: JSONValue, allowed: Set<Field> = Set(Field.allCases)) throws(GatewayError) {
            guard case .object(let object) = value else {
                throw .badRequest("an action must be a JSON object, not \(value.typeName)")
            }
            for (key, value) in object.sorted(by: { $0.key < $1.key }) {
                guard let field = Field(rawValue: key), allowed.contains(field) else {
                    self.unknown.append(key)
                    continue
                }
                if case .null = value { continue }
                switch field {
                case .action: self.action = try Self.string(value, key)
                case .socketID: self.socketID = try Self.string(value, key)
                case .message: self.message = try Self.string(value, key)
                case .type: self.type = try Self.string(value, key)
                case .reason: self.reason = try Self.string(value, key)
                case .group: self.group = try Self.string(value, key)
                case .name: self.name = try Self.string(value, key)
                case .value: self.value = try Self.string(value, key)
                case .path: self.path = try Self.string(value, key)
                case .route: self.route = try Self.string(value, key)
                case .socketType: self.socketType = try Self.string(value, key)
                case .groups: self.groups = try Self.strings(value, key)
                case .exclude: self.exclude = try Self.strings(value, key)
                case .code:
                    guard case .number(let number) = value, let code = Int(exactly: number) else {
                        throw .badRequest("field 'code' must be a whole number, not \(value.typeName)")
                    }
                    self.code = String(code)
                }
            }
        }

        /// Reads JSON text holding one object (a request body), accepting only the `allowed` fields.
        public init(json bytes: some Sequence<UInt8>, allowed: Set<Field>) throws(GatewayError) {
            try self.init(try JSONValue.parse(bytes), allowed: allowed)
        }

        private static func string(_ value: JSONValue, _ key: String) throws(GatewayError) -> String {
            guard case .string(let text) = value else { throw .badRequest("field '\(key)' must be a string, not \(value.typeName)") }
            return text
        }

        private static func strings(_ value: JSONValue, _ key: String) throws(GatewayError) -> [String] {
            guard case .array(let items) = value else { throw .badRequest("field '\(key)' must be an array of strings, not \(value.typeName)") }
            var result: [String] = []
            for item in items {
                guard case .string(let text) = item else { throw .badRequest("field '\(key)' must be an array of strings") }
                result.append(text)
            }
            return result
        }
    }

    /// The action the fields describe. A single-socket action without `socket_id` addresses `defaultSocket` (a
    /// webhook's answer: the event's socket). Every field the action does not use must be absent.
    public init(_ fields: Fields, defaultSocket: String? = nil) throws(GatewayError) {
        guard let name = fields.action else { throw .badRequest("missing field 'action'") }
        let operation: Operation
        var used: Set<Field> = [.action]
        var onFilter = false
        switch name {
        case "send", "broadcast":
            operation = .send(try Self.message(fields))
            used.formUnion([.message, .type])
            onFilter = name == "broadcast"
        case "close", "close_all":
            operation = .close(code: try Self.closeCode(fields.code), reason: try Self.closeReason(fields.reason))
            used.formUnion([.code, .reason])
            onFilter = name == "close_all"
        case "subscribe", "unsubscribe":
            let group = try Self.group(fields.group)
            operation = name == "subscribe" ? .subscribe(group: group) : .unsubscribe(group: group)
            used.insert(.group)
        case "set_attribute":
            guard let attribute = fields.name, !attribute.isEmpty else { throw .badRequest("set_attribute needs a non-empty 'name'") }
            guard let value = fields.value else { throw .badRequest("set_attribute needs a 'value'") }
            operation = .setAttribute(name: attribute, value: value)
            used.formUnion([.name, .value])
        case "remove_attribute":
            guard let attribute = fields.name, !attribute.isEmpty else { throw .badRequest("remove_attribute needs a non-empty 'name'") }
            operation = .removeAttribute(name: attribute)
            used.insert(.name)
        default:
            throw .badRequest(
                "unknown action '\(name)': expected one of send, broadcast, close, close_all, subscribe, unsubscribe, set_attribute, remove_attribute")
        }
        if onFilter {
            used.formUnion([.path, .route, .socketType, .groups, .exclude])
            var excluding = Set<SocketID>()
            for text in fields.exclude ?? [] {
                guard let id = SocketID(validating: text) else { throw .invalidSocketID(text) }
                excluding.insert(id)
            }
            self.init(operation, to: .filter(try Self.filter(fields), excluding: excluding))
        } else {
            used.insert(.socketID)
            guard let socket = fields.socketID ?? defaultSocket else { throw .badRequest("\(name) needs a 'socket_id'") }
            self.init(operation, to: .socket(socket))
        }
        if let unknown = fields.unknown.first {
            let takes = used.subtracting([.action]).map(\.rawValue).sorted().joined(separator: ", ")
            throw .badRequest("unknown field '\(unknown)': action '\(name)' takes \(takes)")
        }
        if let extra = fields.present.subtracting(used).map(\.rawValue).sorted().first {
            throw .badRequest("field '\(extra)' does not apply to action '\(name)'")
        }
    }

    /// A message from `message` and `type`.
    public static func message(_ fields: Fields) throws(GatewayError) -> WebSocketMessage {
        guard let text = fields.message else { throw .badRequest("missing field 'message'") }
        switch fields.type ?? "data-text" {
        case "data-text":
            return .text(text)
        case "data-binary":
            guard let data = Data(base64Encoded: text) else { throw .badRequest("message is not valid base64 for data-binary") }
            return .binary(ByteBuffer(bytes: data))
        case let other:
            throw .badRequest("type must be data-text or data-binary, not '\(other)'")
        }
    }

    /// A filter from `route`, `path`, `groups` and `socket_type`.
    public static func filter(_ fields: Fields) throws(GatewayError) -> ConnectionFilter {
        var filter = ConnectionFilter(route: fields.route, path: fields.path, groups: fields.groups)
        if let groups = fields.groups {
            for group in groups { _ = try Self.group(group) }
            if groups.isEmpty { filter.groups = nil }
        }
        switch fields.socketType {
        case nil, "all"?: filter.socketType = nil
        case let text?:
            guard let type = SocketType(rawValue: text) else {
                throw .badRequest("socket_type must be inbound, outbound or all, not '\(text)'")
            }
            filter.socketType = type
        }
        return filter
    }

    /// A close code that may be sent on the wire (1000 when absent).
    public static func closeCode(_ text: String?) throws(GatewayError) -> WebSocketCloseCode {
        guard let text else { return .normalClosure }
        guard let value = UInt16(text), WebSocketCloseCode(rawValue: value).isValidOnWire else {
            throw .badRequest("code must be a close code that may be sent (1000-1003, 1007-1014, 3000-4999), not '\(text)'")
        }
        return WebSocketCloseCode(rawValue: value)
    }

    /// A close reason that fits a close frame (at most 123 bytes of UTF-8).
    public static func closeReason(_ text: String?) throws(GatewayError) -> String {
        let reason = text ?? ""
        guard reason.utf8.count <= 123 else { throw .badRequest("reason must be at most 123 bytes of UTF-8") }
        return reason
    }

    /// A group name: not empty, no control characters.
    public static func group(_ text: String?) throws(GatewayError) -> String {
        guard let text, !text.isEmpty else { throw .badRequest("missing field 'group'") }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .badRequest("group must not contain control characters")
        }
        return text
    }
}

extension GatewayAction.Fields {
    /// The fields that are set.
    var present: Set<GatewayAction.Field> {
        var result = Set<GatewayAction.Field>()
        let pairs: [(GatewayAction.Field, Bool)] = [
            (.action, self.action != nil), (.socketID, self.socketID != nil), (.message, self.message != nil),
            (.type, self.type != nil), (.code, self.code != nil), (.reason, self.reason != nil), (.group, self.group != nil),
            (.name, self.name != nil), (.value, self.value != nil), (.path, self.path != nil), (.route, self.route != nil),
            (.socketType, self.socketType != nil), (.groups, self.groups != nil), (.exclude, self.exclude != nil),
        ]
        for (field, set) in pairs where set { result.insert(field) }
        return result
    }
}
