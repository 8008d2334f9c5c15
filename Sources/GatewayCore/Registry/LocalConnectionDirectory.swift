import NIOConcurrencyHelpers

/// The directory of a gateway that runs alone: every live connection of this process by id, and the group index.
/// Lookups are hash lookups in one of 16 shards, so their cost does not grow with the number of connections and
/// no global lock sits on any per-message path.
public final class LocalConnectionDirectory: ConnectionDirectory {
    private static let shardCount = 16
    private let shards: [NIOLockedValueBox<[SocketID: GatewayConnection]>]
    /// The members of each group, by id: a group broadcast reads them without touching the shards.
    private let groups = NIOLockedValueBox<[String: [SocketID: GatewayConnection]]>([:])

    /// Creates an empty directory.
    public init() {
        self.shards = (0..<Self.shardCount).map { _ in NIOLockedValueBox([:]) }
    }

    private func shard(_ id: SocketID) -> NIOLockedValueBox<[SocketID: GatewayConnection]> {
        self.shards[Int(UInt(bitPattern: id.hashValue) % UInt(Self.shardCount))]
    }

    public func register(_ connection: GatewayConnection) -> Bool {
        self.shard(connection.id).withLockedValue { connections in
            guard connections[connection.id] == nil else { return false }
            connections[connection.id] = connection
            return true
        }
    }

    public func unregister(_ connection: GatewayConnection) {
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

    public func locate(_ id: SocketID) -> ConnectionLocation? {
        self.connection(id).map { .local($0) }
    }

    func connection(_ id: SocketID) -> GatewayConnection? {
        self.shard(id).withLockedValue { $0[id] }
    }

    public var count: Int {
        self.shards.reduce(0) { $0 + $1.withLockedValue { $0.count } }
    }

    /// A group filter starts from the group index instead of a full scan.
    public func select(_ filter: ConnectionFilter) -> ConnectionSelection {
        ConnectionSelection(local: self.selectLocal(filter))
    }

    private func selectLocal(_ filter: ConnectionFilter) -> [GatewayConnection] {
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

    @discardableResult
    public func subscribe(_ connection: GatewayConnection, to group: String) -> Bool {
        self.groups.withLockedValue { groups in
            // A connection removed meanwhile must not come back into the index.
            guard self.connection(connection.id) === connection, connection.insertGroup(group) else { return false }
            groups[group, default: [:]][connection.id] = connection
            return true
        }
    }

    @discardableResult
    public func unsubscribe(_ connection: GatewayConnection, from group: String) -> Bool {
        self.groups.withLockedValue { groups in
            guard connection.removeGroup(group) else { return false }
            groups[group]?[connection.id] = nil
            if groups[group]?.isEmpty == true { groups[group] = nil }
            return true
        }
    }

    public func groupCounts() -> [GroupInfo] {
        self.groups.withLockedValue { groups in
            groups.map { GroupInfo(name: $0.key, members: $0.value.count) }.sorted { $0.name < $1.name }
        }
    }
}
