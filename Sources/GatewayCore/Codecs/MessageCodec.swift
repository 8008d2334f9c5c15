import FoundationEssentials
import NIOCore
import WebSocketEngine

/// How a connection's messages are decoded on the way in and encoded on the way out.
///
/// Incoming: each message's bytes go through the ``preprocessors`` in order (`lines` splits them into records,
/// buffering a partial record across messages; `base64` decodes), then each resulting record is checked by the
/// ``format`` and becomes one event (`string` and `json` give text events, `binary` binary events). A record the
/// format refuses (invalid JSON, invalid UTF-8, invalid base64) becomes an error event naming the problem and the
/// socket, and the connection stays open.
///
/// Outgoing: a message is checked by the ``format`` (JSON must parse), then goes through the ``postprocessors`` in
/// order (`base64` encodes, `lines` appends a newline) and is sent as one frame: text for `string` and `json` or
/// after `base64`, binary otherwise.
public struct MessageCodec: Sendable, Hashable {
    /// What a message holds.
    public enum Format: String, Sendable, Hashable, CaseIterable {
        /// UTF-8 text.
        case string
        /// One JSON value (RFC 8259), as text.
        case json
        /// Bytes.
        case binary
    }

    /// A transformation of a message's bytes.
    public enum Processor: String, Sendable, Hashable, CaseIterable {
        /// In: one record per newline-terminated line (`\r\n` accepted), buffered across messages. Out: appends `\n`.
        case lines
        /// In: decodes base64. Out: encodes as base64.
        case base64
    }

    /// What messages hold.
    public var format: Format
    /// Applied to incoming bytes before the format's check, in order.
    public var preprocessors: [Processor]
    /// Applied to outgoing bytes after the format's check, in order.
    public var postprocessors: [Processor]

    /// Creates a codec.
    public init(format: Format, preprocessors: [Processor] = [], postprocessors: [Processor] = []) {
        self.format = format
        self.preprocessors = preprocessors
        self.postprocessors = postprocessors
    }

    /// Encodes an outgoing message, or says why it does not fit.
    public func encode(_ message: WebSocketMessage) -> Result<WebSocketMessage, CodecError> {
        var bytes: [UInt8]
        switch message {
        case .text(let text): bytes = Array(text.utf8)
        case .binary(let buffer): bytes = Array(buffer.readableBytesView)
        }
        switch self.format {
        case .string:
            guard String(validating: bytes, as: UTF8.self) != nil else { return .failure(.init("message is not valid UTF-8 text")) }
        case .json:
            if let problem = Self.jsonProblem(bytes) { return .failure(.init("invalid JSON: \(problem)")) }
        case .binary:
            break
        }
        var isText = self.format != .binary
        for processor in self.postprocessors {
            switch processor {
            case .base64:
                bytes = Array(Data(bytes).base64EncodedString().utf8)
                isText = true
            case .lines:
                bytes.append(UInt8(ascii: "\n"))
            }
        }
        return .success(isText ? .text(String(decoding: bytes, as: UTF8.self)) : .binary(ByteBuffer(bytes: bytes)))
    }

    /// The value of a top-level field of a JSON object, as text (strings as they are, numbers and booleans in
    /// their JSON form); `nil` when the bytes are not a JSON object or lack the field.
    static func jsonField(_ name: String, in bytes: [UInt8]) -> String? {
        let decoder = JSONDecoder()
        decoder.userInfo[FieldProbe.fieldKey] = name
        return (try? decoder.decode(FieldProbe.self, from: Data(bytes)))?.value
    }

    /// Why `bytes` are not one JSON value, or `nil` when they are.
    static func jsonProblem(_ bytes: [UInt8]) -> String? {
        do {
            _ = try JSONDecoder().decode(AnyJSON.self, from: Data(bytes))
            return nil
        } catch let DecodingError.dataCorrupted(context) {
            let detail = (context.underlyingError.map { "\($0)" }) ?? context.debugDescription
            return detail
        } catch {
            return "\(error)"
        }
    }
}

/// Why a message does not fit a codec.
public struct CodecError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public var reason: String

    init(_ reason: String) { self.reason = reason }

    public var description: String { self.reason }
}

/// Any JSON value, for validation only.
private struct AnyJSON: Decodable {
    init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            while !array.isAtEnd { _ = try array.decode(AnyJSON.self) }
        } else if let object = try? decoder.container(keyedBy: AnyKey.self) {
            for key in object.allKeys { _ = try object.decode(AnyJSON.self, forKey: key) }
        } else {
            let single = try decoder.singleValueContainer()
            if single.decodeNil() { return }
            if (try? single.decode(Bool.self)) != nil { return }
            if (try? single.decode(Double.self)) != nil { return }
            _ = try single.decode(String.self)
        }
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Reads one top-level field of a JSON object (named in the decoder's user info).
private struct FieldProbe: Decodable {
    static let fieldKey = CodingUserInfoKey(rawValue: "wsgate.field")!
    var value: String?

    init(from decoder: any Decoder) throws {
        guard let name = decoder.userInfo[Self.fieldKey] as? String else { return }
        let object = try decoder.container(keyedBy: AnyKey.self)
        let key = AnyKey(stringValue: name)
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

/// The incoming side of a ``MessageCodec`` for one connection: keeps the partial line of the `lines` processor.
public struct MessageDecoder: Sendable {
    /// What one incoming record became.
    public enum Output: Sendable, Hashable {
        case text(String)
        case binary(ByteBuffer)
        case error(String)
    }

    /// The codec.
    public let codec: MessageCodec
    /// The longest partial line kept (the connection's maximum message size).
    public let maxBuffered: Int
    private var partial: [UInt8] = []

    /// Creates a decoder.
    public init(codec: MessageCodec, maxBuffered: Int) {
        self.codec = codec
        self.maxBuffered = maxBuffered
    }

    /// Decodes one incoming message into zero or more records; `socket` names the connection in error messages.
    public mutating func decode(_ bytes: [UInt8], socket: String) -> [Output] {
        var chunks: [[UInt8]] = [bytes]
        var outputs: [Output] = []
        for processor in self.codec.preprocessors {
            var next: [[UInt8]] = []
            for chunk in chunks {
                switch processor {
                case .lines:
                    next += self.splitLines(chunk, socket: socket, errors: &outputs)
                case .base64:
                    let text = String(decoding: chunk.filter { !Self.isSpace($0) }, as: UTF8.self)
                    if let data = Data(base64Encoded: text) {
                        next.append(Array(data))
                    } else {
                        outputs.append(.error("socket \(socket): invalid base64 input (\(chunk.count) bytes)"))
                    }
                }
            }
            chunks = next
        }
        for chunk in chunks {
            switch self.codec.format {
            case .binary:
                outputs.append(.binary(ByteBuffer(bytes: chunk)))
            case .string:
                if let text = String(validating: chunk, as: UTF8.self) {
                    outputs.append(.text(text))
                } else {
                    outputs.append(.error("socket \(socket): input is not valid UTF-8 text"))
                }
            case .json:
                if let problem = MessageCodec.jsonProblem(chunk) {
                    outputs.append(.error("socket \(socket): invalid JSON: \(problem)"))
                } else {
                    outputs.append(.text(String(decoding: chunk, as: UTF8.self)))
                }
            }
        }
        return outputs
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t")
    }

    private mutating func splitLines(_ chunk: [UInt8], socket: String, errors: inout [Output]) -> [[UInt8]] {
        var records: [[UInt8]] = []
        for byte in chunk {
            if byte == UInt8(ascii: "\n") {
                if self.partial.last == UInt8(ascii: "\r") { self.partial.removeLast() }
                records.append(self.partial)
                self.partial = []
            } else {
                self.partial.append(byte)
            }
        }
        if self.partial.count > self.maxBuffered {
            errors.append(.error("socket \(socket): line longer than \(self.maxBuffered) bytes without a newline, discarded"))
            self.partial = []
        }
        return records
    }
}
