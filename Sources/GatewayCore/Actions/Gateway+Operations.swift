import WebSocketEngine

/// The gateway's operations under their own names: each is a ``GatewayAction`` carried out by
/// ``Gateway/perform(_:origin:)``, plus the queries (``info(_:)``, ``list(_:)``, ``groups()``).
extension Gateway {
    /// The connection of this process with id text `id`.
    public func connection(_ id: String) throws(GatewayError) -> GatewayConnection {
        switch try self.locate(id) {
        case .local(let connection): return connection
        }
    }

    /// Sends a message to one connection.
    public func send(_ id: String, _ message: WebSocketMessage) async throws(GatewayError) {
        try await self.perform(.send(message, to: id))
    }

    /// The info record of one connection.
    public func info(_ id: String) throws(GatewayError) -> ConnectionInfo {
        switch try self.locate(id) {
        case .local(let connection): return connection.info()
        }
    }

    /// The ids of the connections a filter selects, sorted.
    public func list(_ filter: ConnectionFilter = .init()) -> [SocketID] {
        self.directory.select(filter).local.map(\.id).sorted { $0.rawValue < $1.rawValue }
    }

    /// How many connections are open.
    public var connectionCount: Int { self.directory.count }

    /// Closes one connection (waits for the closing handshake, at most the close timeout).
    public func close(_ id: String, code: WebSocketCloseCode = .normalClosure, reason: String = "") async throws(GatewayError) {
        try await self.perform(.close(id, code: code, reason: reason))
    }

    /// Closes every connection a filter selects; returns how many it closed.
    @discardableResult
    public func closeAll(_ filter: ConnectionFilter = .init(), code: WebSocketCloseCode = .normalClosure, reason: String = "") async -> Int {
        guard case .count(let count)? = try? await self.perform(.closeAll(filter, code: code, reason: reason)) else { return 0 }
        return count
    }

    /// Sends one message to every connection a filter selects (minus `excluding`); see
    /// the variant that takes a set of exclusions for how it is delivered.
    public func broadcast(_ message: WebSocketMessage, to filter: ConnectionFilter = .init(), excluding: SocketID? = nil) async -> BroadcastResult {
        await self.broadcast(message, to: filter, excluding: excluding.map { [$0] } ?? [])
    }

    /// Sends one message to every connection a filter selects, except `excluding`. The frame is encoded once and
    /// shared by every connection that would send the same bytes (once per codec for connections that have one); a
    /// connection that cannot take it right now (closed meanwhile, outbound queue full, message over its size limit
    /// or refused by its codec) is reported with its reason, never waited for. An outbound socket that is
    /// reconnecting queues the message (counted as delivered) or reports its full queue.
    public func broadcast(_ message: WebSocketMessage, to filter: ConnectionFilter = .init(), excluding: Set<SocketID>) async -> BroadcastResult {
        guard case .broadcast(let result)? = try? await self.perform(.broadcast(message, to: filter, excluding: excluding)) else {
            return BroadcastResult(delivered: 0, failures: [])
        }
        return result
    }

    /// Adds a connection to a group.
    public func subscribe(_ id: String, to group: String) async throws(GatewayError) {
        try await self.perform(GatewayAction(.subscribe(group: group), to: .socket(id)))
    }

    /// Removes a connection from a group.
    public func unsubscribe(_ id: String, from group: String) async throws(GatewayError) {
        try await self.perform(GatewayAction(.unsubscribe(group: group), to: .socket(id)))
    }

    /// Sets (or with `nil` removes) an attribute of a connection.
    public func setAttribute(_ id: String, _ name: String, _ value: String?) async throws(GatewayError) {
        let operation: GatewayAction.Operation = value.map { .setAttribute(name: name, value: $0) } ?? .removeAttribute(name: name)
        try await self.perform(GatewayAction(operation, to: .socket(id)))
    }

    /// Every group with its member count.
    public func groups() -> [GroupInfo] {
        self.directory.groupCounts()
    }
}
