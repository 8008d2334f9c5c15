/// Where a connection lives. A gateway that runs alone has only local connections; a directory shared by several
/// nodes adds the case of a connection held by another node.
public enum ConnectionLocation: Sendable {
    /// The connection is served by this process.
    case local(GatewayConnection)
}

/// The connections a filter selected, by where they live.
public struct ConnectionSelection: Sendable {
    /// The connections of this process.
    public var local: [GatewayConnection]

    /// Creates a selection.
    public init(local: [GatewayConnection]) {
        self.local = local
    }
}

/// The gateway's view of every live connection: by id, by filter and by group. ``Gateway`` asks its directory where
/// a connection lives before it acts on it, so an implementation that knows other nodes' connections can make every
/// operation reach them; ``LocalConnectionDirectory`` is the directory of a gateway that runs alone.
///
/// Implementations are called on every connection's open and close and on every operation, from any thread: they
/// must be thread-safe and must not block on I/O (keep a local index and update shared state in the background).
public protocol ConnectionDirectory: Sendable {
    /// Adds a connection of this process when it opens; returns `false` when its id is taken.
    func register(_ connection: GatewayConnection) -> Bool
    /// Removes a connection of this process, and its group memberships, when it has closed.
    func unregister(_ connection: GatewayConnection)
    /// Where the connection with `id` lives, or `nil` when there is none.
    func locate(_ id: SocketID) -> ConnectionLocation?
    /// The connections `filter` selects.
    func select(_ filter: ConnectionFilter) -> ConnectionSelection
    /// Adds a connection of this process to a group; returns whether it was new.
    @discardableResult
    func subscribe(_ connection: GatewayConnection, to group: String) -> Bool
    /// Removes a connection of this process from a group; returns whether it was a member.
    @discardableResult
    func unsubscribe(_ connection: GatewayConnection, from group: String) -> Bool
    /// Every group with its member count, by name.
    func groupCounts() -> [GroupInfo]
    /// How many connections there are.
    var count: Int { get }
}
