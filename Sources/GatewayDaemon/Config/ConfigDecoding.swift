import Foundation
import GatewayCore
import NIOCore

/// A key of any name, for checking which keys a section has.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

/// `${VAR}` references while a config file is decoded. Before YAML parsing each reference is replaced by a
/// placeholder (`${...}` would break YAML flow mappings such as `{token: ${TOKEN}}`); the placeholder is expanded
/// when its key is decoded, so a missing variable is reported with the key that uses it.
enum ConfigEnvironment {
    struct Reference: Sendable {
        var name: String
        var fallback: String?
    }

    @TaskLocal static var values: [String: String] = [:]
    @TaskLocal static var references: [Reference] = []

    static func placeholder(_ index: Int) -> String { "WSGATEENV\(index)X" }

    /// Replaces every `${NAME}` / `${NAME:-default}` by a placeholder.
    static func substitutePlaceholders(in text: String) -> (String, [Reference]) {
        var result = ""
        var references: [Reference] = []
        var rest = Substring(text)
        while let start = rest.range(of: "${"), let end = rest[start.upperBound...].firstIndex(of: "}") {
            result += rest[..<start.lowerBound]
            let parts = rest[start.upperBound..<end].split(separator: ":-", maxSplits: 1, omittingEmptySubsequences: false)
            references.append(Reference(name: String(parts[0]), fallback: parts.count == 2 ? String(parts[1]) : nil))
            result += Self.placeholder(references.count - 1)
            rest = rest[rest.index(after: end)...]
        }
        return (result + rest, references)
    }
}

/// The errors of a whole file, while `wsgate check` (``DaemonConfiguration/check(yaml:environment:)``) reads it:
/// a value that is wrong is recorded and read as absent, so that reading goes on and every error is reported.
/// Without a collector (serving), the first error is thrown.
final class ConfigErrorCollector: @unchecked Sendable {
    // Used by one synchronous decode on one thread (the collector is a task-local of that decode).
    private(set) var errors: [ConfigError] = []

    @TaskLocal static var current: ConfigErrorCollector?

    /// Records an error, unless one was recorded for the same key (a wrong value read as absent would otherwise
    /// be reported again as missing).
    func record(_ error: ConfigError) {
        if !self.errors.contains(where: { $0.key == error.key }) { self.errors.append(error) }
    }

    /// Records `error` and returns `nil` (the value is read as absent) while collecting; throws it otherwise.
    static func recover<T>(_ error: ConfigError) throws -> T? {
        guard let collector = Self.current else { throw error }
        collector.record(error)
        return nil
    }

    /// Runs `body`; while collecting, a `ConfigError` it throws is recorded and `nil` returned.
    @discardableResult
    static func recovering<T>(_ body: () throws -> T?) throws -> T? {
        do {
            return try body()
        } catch let error as ConfigError {
            return try Self.recover(error)
        }
    }
}

extension Decoder {
    /// The keyed container of a config section; a key the section does not know is an error naming it.
    func section<K: CodingKey & CaseIterable>(_ keys: K.Type) throws -> KeyedDecodingContainer<K> {
        let all = try self.container(keyedBy: AnyKey.self)
        let known = K.allCases.map(\.stringValue)
        for key in all.allKeys where !known.contains(key.stringValue) {
            let _: Void? = try ConfigErrorCollector.recover(
                ConfigError(key: keyPath(self.codingPath + [key]), value: "an unknown key", expected: "one of \(known.joined(separator: ", "))"))
        }
        return try self.container(keyedBy: K.self)
    }
}

extension KeyedDecodingContainer {
    private func path(_ key: Key) -> String { keyPath(self.codingPath + [key]) }

    /// A scalar as text, with `${VAR}` and `${VAR:-default}` expanded from the environment.
    func text(_ key: Key) throws -> String? {
        guard self.contains(key), try !self.decodeNil(forKey: key) else { return nil }
        let raw: String
        if let text = try? self.decode(String.self, forKey: key) {
            raw = text
        } else if let flag = try? self.decode(Bool.self, forKey: key) {
            // JSON bodies (management API) carry numbers and booleans as themselves.
            raw = String(flag)
        } else if let number = try? self.decode(Int.self, forKey: key) {
            raw = String(number)
        } else if let number = try? self.decode(Double.self, forKey: key) {
            raw = String(number)
        } else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "a list or a mapping", expected: "a single value"))
        }
        return try ConfigErrorCollector.recovering { try self.expand(raw, key: key) }
    }

    /// A mapping of names to scalar values (headers, query parameters...).
    func map(_ key: Key) throws -> [String: String]? {
        guard self.contains(key), try !self.decodeNil(forKey: key) else { return nil }
        let mapping: KeyedDecodingContainer<AnyKey>
        do {
            mapping = try self.nestedContainer(keyedBy: AnyKey.self, forKey: key)
        } catch {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "a single value or a list", expected: "a mapping of names to values"))
        }
        var result: [String: String] = [:]
        for name in mapping.allKeys {
            result[name.stringValue] = try mapping.text(name) ?? ""
        }
        return result
    }

    private func expand(_ raw: String, key: Key) throws -> String {
        guard raw.contains("WSGATEENV") else { return raw }
        var result = raw
        for (index, reference) in ConfigEnvironment.references.enumerated().reversed() {
            let placeholder = ConfigEnvironment.placeholder(index)
            guard result.contains(placeholder) else { continue }
            guard let value = ConfigEnvironment.values[reference.name] ?? reference.fallback else {
                throw ConfigError(key: self.path(key), value: "${\(reference.name)}", expected: "environment variable \(reference.name) to be set")
            }
            result = result.replacing(placeholder, with: value)
        }
        return result
    }

    func duration(_ key: Key) throws -> TimeAmount? {
        guard let text = try self.text(key) else { return nil }
        guard let value = DurationText.parse(text) else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: DurationText.expected))
        }
        return value
    }

    func size(_ key: Key) throws -> Int? {
        guard let text = try self.text(key) else { return nil }
        guard let value = SizeText.parse(text), value > 0 else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: "a positive " + SizeText.expected.dropFirst(2)))
        }
        return value
    }

    func int(_ key: Key, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = try self.text(key) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: "a whole number from \(range.lowerBound) to \(range.upperBound)"))
        }
        return value
    }

    /// A limit that `off` (or 0) turns off: `nil` when absent, `.some(nil)` when off.
    func limit(_ key: Key, in range: ClosedRange<Int>) throws -> Int?? {
        guard let text = try self.text(key) else { return nil }
        if text == "off" || text == "0" { return .some(nil) }
        guard let value = Int(text), range.contains(value) else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: "off or a whole number from \(range.lowerBound) to \(range.upperBound)"))
        }
        return value
    }

    /// A duration that `off` (or 0) turns off: `nil` when absent, `.some(nil)` when off.
    func optionalDuration(_ key: Key) throws -> TimeAmount?? {
        guard let text = try self.text(key) else { return nil }
        if text == "off" { return .some(nil) }
        guard let value = DurationText.parse(text) else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: "off or " + DurationText.expected))
        }
        return value == .zero ? .some(nil) : value
    }

    /// A size that `off` turns off: `nil` when absent, `.some(nil)` when off.
    func optionalSize(_ key: Key) throws -> Int?? {
        guard let text = try self.text(key) else { return nil }
        if text == "off" { return .some(nil) }
        return try self.size(key)
    }

    /// A section that `off` (or `false`) turns off: `nil` when absent, `.some(nil)` when off.
    func optionalSection<T: Decodable>(_ key: Key, _ type: T.Type) throws -> T?? {
        guard self.contains(key), try !self.decodeNil(forKey: key) else { return nil }
        if let text = try? self.decode(String.self, forKey: key) {
            guard ["off", "false", "no"].contains(text) else {
                return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: "off or a mapping of settings"))
            }
            return .some(nil)
        }
        if let flag = try? self.decode(Bool.self, forKey: key), !flag { return .some(nil) }
        return try self.nested(key, type)
    }

    func number(_ key: Key) throws -> Double? {
        guard let text = try self.text(key) else { return nil }
        guard let value = Double(text), value > 0, value.isFinite else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: "a positive number"))
        }
        return value
    }

    func bool(_ key: Key) throws -> Bool? {
        guard let text = try self.text(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: "true or false"))
        }
    }

    func choice<T: RawRepresentable & CaseIterable>(_ key: Key, _ type: T.Type) throws -> T? where T.RawValue == String {
        guard let text = try self.text(key) else { return nil }
        guard let value = T(rawValue: text) else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: "one of \(T.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        return value
    }

    func address(_ key: Key) throws -> ListenAddress? {
        guard let text = try self.text(key) else { return nil }
        guard let value = ListenAddress.parse(text) else {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "'\(text)'", expected: ListenAddress.expected))
        }
        return value
    }

    func texts(_ key: Key) throws -> [String]? {
        guard self.contains(key), try !self.decodeNil(forKey: key) else { return nil }
        var list: any UnkeyedDecodingContainer
        do {
            list = try self.nestedUnkeyedContainer(forKey: key)
        } catch {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "a single value", expected: "a list"))
        }
        var values: [String] = []
        while !list.isAtEnd {
            let index = list.currentIndex
            guard let raw = try? list.decode(String.self) else {
                return try ConfigErrorCollector.recover(ConfigError(key: self.path(key) + "[\(index)]", value: "a list or a mapping", expected: "a single value"))
            }
            values.append(try self.expand(raw, key: key))
        }
        return values
    }

    func nested<T: Decodable>(_ key: Key, _ type: T.Type) throws -> T? {
        guard self.contains(key), try !self.decodeNil(forKey: key) else { return nil }
        do {
            return try self.decode(T.self, forKey: key)
        } catch let error as ConfigError {
            return try ConfigErrorCollector.recover(error)
        } catch DecodingError.typeMismatch(_, let context) {
            return try ConfigErrorCollector.recover(
                ConfigError(key: keyPath(context.codingPath), value: "a different kind of value", expected: "a mapping of settings"))
        }
    }

    /// A list of sections, each read on its own: while collecting (`wsgate check`), an entry with errors is
    /// recorded and left out, and the entries after it are still read.
    func list<T: Decodable>(_ key: Key, _ type: T.Type) throws -> [T]? {
        guard self.contains(key), try !self.decodeNil(forKey: key) else { return nil }
        var entries: any UnkeyedDecodingContainer
        do {
            entries = try self.nestedUnkeyedContainer(forKey: key)
        } catch {
            return try ConfigErrorCollector.recover(ConfigError(key: self.path(key), value: "a single value or a mapping", expected: "a list"))
        }
        var result: [T] = []
        while !entries.isAtEnd {
            let index = entries.currentIndex
            do {
                result.append(try entries.decode(T.self))
            } catch let error as ConfigError {
                let _: Void? = try ConfigErrorCollector.recover(error)
            } catch DecodingError.typeMismatch(_, let context) {
                let _: Void? = try ConfigErrorCollector.recover(
                    ConfigError(key: keyPath(context.codingPath), value: "a different kind of value", expected: "a mapping of settings"))
            }
            // A failed entry is not consumed: step over it.
            if entries.currentIndex == index { _ = try? entries.decode(SkippedEntry.self) }
            if entries.currentIndex == index { break }
        }
        return result
    }
}

/// Any value, read to step over a list entry that failed.
private struct SkippedEntry: Decodable {
    init(from decoder: any Decoder) throws {}
}
