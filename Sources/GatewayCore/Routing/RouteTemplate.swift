import WebSocketEngine

/// A route path template such as `/devices/{id}` or `/chat/{room}/live`: literal segments and `{name}`
/// parameters, each matching one whole path segment.
public struct RouteTemplate: Hashable, Sendable, CustomStringConvertible {
    enum Segment: Hashable, Sendable {
        case literal(String)
        case parameter(String)
    }

    /// The template as written.
    public let template: String
    let segments: [Segment]

    /// Parses a template; fails on an empty or unterminated parameter, a repeated parameter name or a missing `/`.
    public init(_ template: String) throws(GatewayConfigurationError) {
        guard template.hasPrefix("/") else {
            throw GatewayConfigurationError(key: "path", value: "'\(template)'", expected: "a path starting with /")
        }
        var names = Set<String>()
        var segments: [Segment] = []
        for part in template.split(separator: "/", omittingEmptySubsequences: true) {
            if part.hasPrefix("{") || part.hasSuffix("}") || part.contains("{") {
                guard part.hasPrefix("{"), part.hasSuffix("}"), part.count > 2,
                    !part.dropFirst().dropLast().contains(where: { "{}/".contains($0) })
                else {
                    throw GatewayConfigurationError(key: "path", value: "'\(template)'", expected: "parameters as whole segments like {name}")
                }
                let name = String(part.dropFirst().dropLast())
                guard names.insert(name).inserted else {
                    throw GatewayConfigurationError(key: "path", value: "'\(template)'", expected: "each parameter name once")
                }
                segments.append(.parameter(name))
            } else {
                segments.append(.literal(String(part)))
            }
        }
        self.template = template
        self.segments = segments
    }

    /// The parameters of the template, in order.
    public var parameterNames: [String] {
        self.segments.compactMap { if case .parameter(let name) = $0 { return name } else { return nil } }
    }

    /// Matches a request path (without query); returns the path parameters, percent-decoded.
    public func match(_ path: String) -> [String: String]? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count == self.segments.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(self.segments, parts) {
            switch segment {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .parameter(let name):
                parameters[name] = PercentEncoding.decode(part)
            }
        }
        return parameters
    }

    /// Orders templates most specific first: more literal segments, then literals earlier in the path.
    static func moreSpecific(_ a: RouteTemplate, than b: RouteTemplate) -> Bool {
        let literalsA = a.segments.filter { if case .literal = $0 { return true } else { return false } }.count
        let literalsB = b.segments.filter { if case .literal = $0 { return true } else { return false } }.count
        if literalsA != literalsB { return literalsA > literalsB }
        for (x, y) in zip(a.segments, b.segments) {
            switch (x, y) {
            case (.literal, .parameter): return true
            case (.parameter, .literal): return false
            default: continue
            }
        }
        return a.segments.count > b.segments.count
    }

    /// Fills `{name}` placeholders of a text (such as a group template `room:{room}`) from parameters; unknown
    /// names are left as they are.
    public static func expand(_ text: String, with parameters: [String: String]) -> String {
        var result = text
        for (name, value) in parameters {
            result = result.replacing("{\(name)}", with: value)
        }
        return result
    }

    public var description: String { self.template }
}
