import WebSocketEngine

/// What can be done to connections, as a value: an ``Operation`` and its ``Target`` (one socket, or every socket a
/// filter selects). The management API, webhook answers, flows and library users all describe what they want done
/// as a `GatewayAction` and hand it to ``Gateway/perform(_:origin:)``, the one place that carries actions out; a
/// JSON action is parsed once, by ``GatewayAction/init(_:_:defaultSocket:)``.
public struct GatewayAction: Sendable, Hashable {
    /// Which connections an action addresses.
    public enum Target: Sendable, Hashable {
        /// One connection, by the text of its id (checked when the action is performed).
        case socket(String)
        /// Every connection the filter selects, except those listed.
        case filter(ConnectionFilter, excluding: Set<SocketID>)
    }

    /// What is done to each addressed connection.
    public enum Operation: Sendable, Hashable {
        /// Send a message (to a filter: a broadcast, the frame encoded once).
        case send(WebSocketMessage)
        /// Close with a code and a reason.
        case close(code: WebSocketCloseCode, reason: String)
        /// Add to a group.
        case subscribe(group: String)
        /// Remove from a group.
        case unsubscribe(group: String)
        /// Set an attribute.
        case setAttribute(name: String, value: String)
        /// Remove an attribute.
        case removeAttribute(name: String)
    }

    /// What is done.
    public var operation: Operation
    /// To which connections.
    public var target: Target

    /// Creates an action.
    public init(_ operation: Operation, to target: Target) {
        self.operation = operation
        self.target = target
    }

    /// Sends `message` to the connection `id`.
    public static func send(_ message: WebSocketMessage, to id: String) -> Self { Self(.send(message), to: .socket(id)) }

    /// Sends `message` to every connection `filter` selects except `excluding`.
    public static func broadcast(_ message: WebSocketMessage, to filter: ConnectionFilter = .init(), excluding: Set<SocketID> = []) -> Self {
        Self(.send(message), to: .filter(filter, excluding: excluding))
    }

    /// Closes the connection `id`.
    public static func close(_ id: String, code: WebSocketCloseCode = .normalClosure, reason: String = "") -> Self {
        Self(.close(code: code, reason: reason), to: .socket(id))
    }

    /// Closes every connection `filter` selects.
    public static func closeAll(_ filter: ConnectionFilter = .init(), code: WebSocketCloseCode = .normalClosure, reason: String = "") -> Self {
        Self(.close(code: code, reason: reason), to: .filter(filter, excluding: []))
    }

    /// The action's name, as in a JSON action's `action` field.
    public var name: String {
        switch (self.operation, self.target) {
        case (.send, .socket): return "send"
        case (.send, .filter): return "broadcast"
        case (.close, .socket): return "close"
        case (.close, .filter): return "close_all"
        case (.subscribe, _): return "subscribe"
        case (.unsubscribe, _): return "unsubscribe"
        case (.setAttribute, _): return "set_attribute"
        case (.removeAttribute, _): return "remove_attribute"
        }
    }
}

/// What performing an action gave.
public enum GatewayActionResult: Sendable, Hashable {
    /// The action on one connection was done.
    case done
    /// A message sent to a filter: how many took it, and every connection that did not, with its reason.
    case broadcast(BroadcastResult)
    /// Another action on a filter: how many connections it was done to.
    case count(Int)
}
