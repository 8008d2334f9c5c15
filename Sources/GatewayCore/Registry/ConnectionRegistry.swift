import NIOConcurrencyHelpers

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

    func matches(_ connection: GatewayConnection) -> Bool {
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

/// Every live connection by id, and the group index. Lookups are hash lookups in one of 16 shards, so their
/// cost does not grow with the number of connections and no global lock sits on any per-message path.
final class ConnectionRegistry: Sendable {
    private static let shardCount = 16
    private let shards: [NIOLockedValueBox<[SocketID: GatewayConnection]>]
    /// The members of each group, by id: a group broadcast reads them without touching the shards.
    private let groups = NIOLockedValueBox<[String: [SocketID: GatewayConnection]]>([:])

    init() {
        self.shards = (0..<Self.shardCount).map { _ in NIOLockedValueBox([:]) }
    }

    private func shard(_ id: SocketID) -> NIOLockedValueBox<[SocketID: GatewayConnection]> {
        self.shards[Int(UInt(bitPattern: id.hashValue) % UInt(Self.shardCount))]
    }

    /// Adds a connection; fails when the id is taken.
    func insert(_ connection: GatewayConnection) -> Bool {
        self.shard(connection.id).withLockedValue { connections in
            guard connections[connection.id] == nil else { return false }
            connections[connection.id] = connection
            return true
        }
    }

    /// Removes a connection and its group memberships.
    func remove(_ connection: GatewayConnection) {
        self.groups.withLockedValue { groups in
            self.shard(connection.id).withLockedValue { connections in
                if connections[connection.id] === connection { connections[connection.id] = nil }
            }
            let memberOf = connection.groups
            for group in memberOf {
                groups[group]?[connection.id] = nil
                if groups[group]?.isEmpty == true { groups[group] = nil }
            }
        }
    }

    func connection(_ id: SocketID) -> GatewayConnection? {
        self.shard(id).withLockedValue { $0[id] }
    }

    var count: Int {
        self.shards.reduce(0) { $0 + $1.withLockedValue { $0.count } }
    }

    /// The connections a filter selects; a group filter starts from the group index instead of a full scan.
    func select(_ filter: ConnectionFilter) -> [GatewayConnection] {
        if let groups = filter.groups, !groups.isEmpty {
            let members: [GatewayConnection] = self.groups.withLockedValue { index in
                if groups.count == 1 { return index[groups[0]].map { Array($0.values) } ?? [] }
                var union: [SocketID: GatewayConnection] = [:]
                for group in groups { union.merge(index[group] ?? [:]) { first, _ in first } }
                return Array(union.values)
            }
            // Membership is what the index says; only the other fields are left to check.
            var rest = filter
            rest.groups = nil
            return rest == ConnectionFilter() ? members : members.filter(rest.matches)
        }
        return self.shards.flatMap { shard in shard.withLockedValue { Array($0.values) } }.filter(filter.matches)
    }

    /// Adds a connection to a group; returns whether it was new.
    @discardableResult
    func subscribe(_ connection: GatewayConnection, to group: String) -> Bool {
        self.groups.withLockedValue { groups in
            // A connection removed meanwhile must not come back into the index.
            guard self.connection(connection.id) === connection, connection.insertGroup(group) else { return false }
            groups[group, default: [:]][connection.id] = connection
            return true
        }
    }

    /// Removes a connection from a group; returns whether it was a member.
    @discardableResult
    func unsubscribe(_ connection: GatewayConnection, from group: String) -> Bool {
        self.groups.withLockedValue { groups in
            guard connection.removeGroup(group) else { return false }
            groups[group]?[connection.id] = nil
            if groups[group]?.isEmpty == true { groups[group] = nil }
            return true
        }
    }

    /// Every group with its member count, by name.
    func groupCounts() -> [GroupInfo] {
        self.groups.withLockedValue { groups in
            groups.map { GroupInfo(name: $0.key, members: $0.value.count) }.sorted { $0.name < $1.name }
        }
    }
}
