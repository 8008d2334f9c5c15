/// Which connections an operation addresses. Every field that is set must match; `groups` matches a connection
/// in any of them.
public struct ConnectionFilter: Sendable, Hashable {
    /// The route template.
    public var route: String?
    /// The exact request path.
    public var path: String?
    /// Member of any of these groups.
    public var groups: [String]?
    /// Inbound or outbound (`nil`: both).
    public var socketType: SocketType?

    /// Creates a filter; no fields means every connection.
    public init(route: String? = nil, path: String? = nil, groups: [String]? = nil, socketType: SocketType? = nil) {
        self.route = route
        self.path = path
        self.groups = groups
        self.socketType = socketType
    }

    /// Whether `connection` matches every field that is set.
    public func matches(_ connection: GatewayConnection) -> Bool {
        if let route = self.route, connection.route != route { return false }
        if let path = self.path, connection.path != path { return false }
        if let type = self.socketType, connection.type != type { return false }
        if let groups = self.groups, !groups.isEmpty {
            let member = connection.groups
            guard groups.contains(where: member.contains) else { return false }
        }
        return true
    }
}

/// A group and how many connections are in it.
public struct GroupInfo: Sendable, Hashable, Codable {
    /// The group's name.
    public var name: String
    /// Its member count.
    public var members: Int

    /// Creates a group record.
    public init(name: String, members: Int) {
        self.name = name
        self.members = members
    }
}
