import NIOCore
import WebSocketEngine

/// A live feed: every message that arrives on the connection it serves (typically an outbound socket to an upstream
/// service) is broadcast to the inbound connections of a group.
public struct ForwardHandler: GatewayMessageHandler {
    /// The group the messages fan out to.
    public var group: String

    /// Creates the handler.
    public init(group: String) {
        self.group = group
    }

    public func onMessage(_ context: GatewayContext, _ message: WebSocketMessage) async {
        let result = await context.gateway.broadcast(
            message, to: ConnectionFilter(groups: [self.group], socketType: .inbound), excluding: context.connection.id)
        if !result.failures.isEmpty {
            var metadata = context.connection.logMetadata
            metadata["group"] = "\(self.group)"
            metadata["failures"] = "\(result.failures.count)"
            context.gateway.configuration.logger.debug("forward: some members did not take the message", metadata: metadata)
        }
    }
}

extension MessageCodec {
    /// The value of a top-level field of a JSON object, as text (strings as they are, numbers and booleans in
    /// their JSON form); `nil` when the bytes are not a JSON object or lack the field.
    static func jsonField(_ name: String, in bytes: [UInt8]) -> String? {
        let decoder = JSONDecoder()
        decoder.userInfo[FieldProbe.fieldKey] = name
        return (try? decoder.decode(FieldProbe.self, from: Data(bytes)))?.value
    }
}

import FoundationEssentials

private struct FieldProbe: Decodable {
    static let fieldKey = CodingUserInfoKey(rawValue: "wsgate.field")!
    var value: String?

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        guard let name = decoder.userInfo[Self.fieldKey] as? String else { return }
        let object = try decoder.container(keyedBy: Key.self)
        let key = Key(stringValue: name)
        if let text = try? object.decode(String.self, forKey: key) {
            self.value = text
        } else if let number = try? object.decode(Int64.self, forKey: key) {
            self.value = String(number)
        } else if let number = try? object.decode(Double.self, forKey: key) {
            self.value = String(number)
        } else if let flag = try? object.decode(Bool.self, forKey: key) {
            self.value = String(flag)
        }
    }
}
