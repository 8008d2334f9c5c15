import WebSocketEngine

extension Gateway {
    /// Carries out an action: the one place where the gateway acts on connections, whoever asks (the management
    /// API, a webhook's answer, a flow, a handler or a library user).
    ///
    /// An action on one socket returns ``GatewayActionResult/done`` or throws; a message sent to a filter returns
    /// ``GatewayActionResult/broadcast(_:)`` with every connection that did not take it (a socket reserved for one
    /// sender, see ``GatewayHandler/exclusiveSender``, takes no action's message: `socket_reserved`); any other action on a filter
    /// returns ``GatewayActionResult/count(_:)``. `origin` is the connection on whose behalf the action runs (a
    /// webhook's event socket): closing it starts its closing handshake without waiting for it, since its own
    /// handler is the one that would have to see the close.
    ///
    /// - Throws: ``GatewayError`` of kind `invalid_socket_id`, `no_such_socket`, `socket_not_open`,
    ///   `message_too_large`, `slow_consumer`, `invalid_message`, `reconnect_queue_full`, `not_connected`,
    ///   `socket_reserved`, `send_failed` (actions on one socket).
    @discardableResult
    public func perform(_ action: GatewayAction, origin: SocketID? = nil) async throws(GatewayError) -> GatewayActionResult {
        switch action.target {
        case .socket(let id):
            switch try self.locate(id) {
            case .local(let connection):
                try await self.perform(action.operation, on: connection, origin: origin)
            }
            return .done
        case .filter(let filter, let excluding):
            let selection = self.directory.select(filter)
            if case .send(let message) = action.operation {
                return .broadcast(await self.broadcast(message, to: selection, excluding: excluding))
            }
            let targets = selection.local.filter { !excluding.contains($0.id) && !$0.isClosing }
            if case .close(let code, let reason) = action.operation {
                await withTaskGroup(of: Void.self) { group in
                    for connection in targets {
                        group.addTask { try? await connection.close(code: code, reason: reason) }
                    }
                }
                return .count(targets.count)
            }
            var count = 0
            for connection in targets where (try? await self.perform(action.operation, on: connection, origin: origin)) != nil {
                count += 1
            }
            return .count(count)
        }
    }

    /// Where the connection with id text `id` lives.
    func locate(_ id: String) throws(GatewayError) -> ConnectionLocation {
        guard let socketID = SocketID(validating: id) else { throw .invalidSocketID(id) }
        guard let location = self.directory.locate(socketID) else { throw .noSuchSocket(id) }
        return location
    }

    /// One operation on one connection of this process.
    private func perform(_ operation: GatewayAction.Operation, on connection: GatewayConnection, origin: SocketID?) async throws(GatewayError) {
        let id = connection.id.rawValue
        switch operation {
        case .send(let message):
            if let owner = connection.reservedFor { throw .socketReserved(id, owner: owner) }
            try await connection.send(message)
        case .close(let code, let reason):
            guard !connection.isClosing else { throw .socketNotOpen(id) }
            if connection.id == origin {
                connection.startClose(code: code, reason: reason)
            } else {
                try await connection.close(code: code, reason: reason)
            }
        case .subscribe(let group):
            guard !connection.isClosing else { throw .socketNotOpen(id) }
            if let refusal = self.groupRefusal([group], joining: connection.groups) { throw .groupLimit(refusal) }
            self.directory.subscribe(connection, to: group)
        case .unsubscribe(let group):
            self.directory.unsubscribe(connection, from: group)
        case .setAttribute(let name, let value):
            connection.setAttribute(name, value)
        case .removeAttribute(let name):
            connection.setAttribute(name, nil)
        }
    }
}
