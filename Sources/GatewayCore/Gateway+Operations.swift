import WebSocketEngine

/// The outcome of a broadcast.
public struct BroadcastResult: Sendable, Hashable {
    /// How many connections took the message.
    public var delivered: Int
    /// One entry per connection that could not.
    public var failures: [BroadcastFailure]

    /// Creates a result.
    public init(delivered: Int, failures: [BroadcastFailure]) {
        self.delivered = delivered
        self.failures = failures
    }
}

/// A connection a broadcast could not reach, and why.
public struct BroadcastFailure: Sendable, Hashable, Codable {
    /// The connection's id.
    public var socketID: SocketID
    /// Inbound or outbound.
    public var socketType: SocketType
    /// The connection's URI.
    public var uri: String
    /// Why: `closed meanwhile`, `slow consumer`, `message too large`...
    public var error: String

    enum CodingKeys: String, CodingKey {
        case socketID = "socket_id"
        case socketType = "socket_type"
        case uri, error
    }
}

extension Gateway {
    /// Looks a connection up by id text.
    public func connection(_ id: String) throws(GatewayError) -> GatewayConnection {
        guard let socketID = SocketID(validating: id) else { throw .invalidSocketID(id) }
        guard let connection = self.registry.connection(socketID) else { throw .noSuchSocket(id) }
        return connection
    }

    /// Sends a message to one connection.
    public func send(_ id: String, _ message: WebSocketMessage) async throws(GatewayError) {
        try await self.connection(id).send(message)
    }

    /// The info record of one connection.
    public func info(_ id: String) throws(GatewayError) -> ConnectionInfo {
        try self.connection(id).info()
    }

    /// The ids of the connections a filter selects, sorted.
    public func list(_ filter: ConnectionFilter = .init()) -> [SocketID] {
        self.registry.select(filter).map(\.id).sorted { $0.rawValue < $1.rawValue }
    }

    /// How many connections are open.
    public var connectionCount: Int { self.registry.count }

    /// Closes one connection (waits for the closing handshake, at most the close timeout).
    public func close(_ id: String, code: WebSocketCloseCode = .normalClosure, reason: String = "") async throws(GatewayError) {
        let connection = try self.connection(id)
        guard !connection.isClosing else { throw .socketNotOpen(id) }
        try await connection.close(code: code, reason: reason)
    }

    /// Closes every connection a filter selects; returns how many it closed.
    @discardableResult
    public func closeAll(_ filter: ConnectionFilter = .init(), code: WebSocketCloseCode = .normalClosure, reason: String = "") async -> Int {
        let targets = self.registry.select(filter).filter { !$0.isClosing }
        await withTaskGroup(of: Void.self) { group in
            for connection in targets {
                group.addTask { try? await connection.close(code: code, reason: reason) }
            }
        }
        return targets.count
    }

    /// Sends one message to every connection a filter selects (minus `excluding`). The frame is encoded once and
    /// shared by every connection that would send the same bytes (once per codec for connections that have one); a
    /// connection that cannot take it right now (closed meanwhile, outbound queue full, message over its size limit
    /// or refused by its codec) is reported, never waited for. An outbound socket that is reconnecting queues the
    /// message (counted as delivered) or reports its full queue.
    public func broadcast(_ message: WebSocketMessage, to filter: ConnectionFilter = .init(), excluding: SocketID? = nil) async -> BroadcastResult {
        let plain = WebSocketPreparedMessage(message)
        var encoded: [MessageCodec: Result<WebSocketPreparedMessage, CodecError>] = [:]
        var failures: [BroadcastFailure] = []
        var batches: [MessageCodec?: (prepared: WebSocketPreparedMessage, targets: [GatewayConnection], sockets: [WebSocket])] = [:]
        var queued = 0
        for connection in self.registry.select(filter) where connection.id != excluding {
            var prepared = plain
            if let codec = connection.codec {
                let result = encoded[codec] ?? codec.encode(message).map { WebSocketPreparedMessage($0) }
                encoded[codec] = result
                switch result {
                case .success(let value): prepared = value
                case .failure(let error):
                    failures.append(Self.failure(connection, "invalid message for its codec: \(error.reason)"))
                    continue
                }
            }
            if prepared.size > connection.maxMessageSize {
                failures.append(Self.failure(connection, "message too large (\(prepared.size) bytes, limit \(connection.maxMessageSize))"))
            } else if connection.isOpen, let socket = connection.socket {
                batches[connection.codec, default: (prepared, [], [])].targets.append(connection)
                batches[connection.codec]!.sockets.append(socket)
            } else if let link = connection.link, !connection.isClosing {
                if let error = link.enqueueDetached(prepared) {
                    failures.append(Self.failure(connection, error.description))
                } else {
                    queued += 1
                }
            } else {
                failures.append(Self.failure(connection, "closed meanwhile"))
            }
        }
        var delivered = queued
        for batch in batches.values {
            delivered += await self.send(batch.prepared, to: batch.targets, sockets: batch.sockets, failures: &failures)
        }
        RouteMetrics.broadcast(delivered: delivered, failures: failures)
        return BroadcastResult(delivered: delivered, failures: failures)
    }

    /// Sends one prepared message to connections in one batch; returns how many took it.
    private func send(
        _ prepared: WebSocketPreparedMessage, to targets: [GatewayConnection], sockets: [WebSocket], failures: inout [BroadcastFailure]
    ) async -> Int {
        let sendFailures = await WebSocket.send(prepared, to: sockets)
        var failed = Set<Int>()
        for (index, error) in sendFailures {
            failed.insert(index)
            let connection = targets[index]
            switch error.kind {
            case .outboundQueueFull:
                connection.metrics.slowConsumer(connection.slowConsumer)
                self.configuration.logger.warning("slow consumer: broadcast not delivered", metadata: connection.logMetadata)
                if connection.slowConsumer == .close {
                    connection.startClose(code: .policyViolation, reason: "slow consumer")
                }
                failures.append(Self.failure(connection, "slow consumer (outbound queue full)"))
            case .connectionClosed, .connectionClosing:
                failures.append(Self.failure(connection, "closed meanwhile"))
            default:
                failures.append(Self.failure(connection, "\(error)"))
            }
        }
        for (index, connection) in targets.enumerated() where !failed.contains(index) {
            connection.countOutbound(bytes: prepared.size)
        }
        return targets.count - failed.count
    }

    private static func failure(_ connection: GatewayConnection, _ error: String) -> BroadcastFailure {
        BroadcastFailure(socketID: connection.id, socketType: connection.type, uri: connection.uri, error: error)
    }

    /// Adds a connection to a group.
    public func subscribe(_ id: String, to group: String) throws(GatewayError) {
        let connection = try self.connection(id)
        guard !connection.isClosing else { throw .socketNotOpen(id) }
        self.registry.subscribe(connection, to: group)
    }

    /// Removes a connection from a group.
    public func unsubscribe(_ id: String, from group: String) throws(GatewayError) {
        self.registry.unsubscribe(try self.connection(id), from: group)
    }

    /// Every group with its member count.
    public func groups() -> [GroupInfo] {
        self.registry.groupCounts()
    }
}
