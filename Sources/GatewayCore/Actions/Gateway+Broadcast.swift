import Logging
import WebSocketEngine

extension Gateway {
    /// Delivers one message to the selected connections, except `excluding` (see
    /// ``broadcast(_:to:excluding:)``): encoded once per codec, written in one batch per event loop, every
    /// connection that could not take it reported with a typed reason.
    func broadcast(_ message: WebSocketMessage, to selection: ConnectionSelection, excluding: Set<SocketID>) async -> BroadcastResult {
        let plain = WebSocketPreparedMessage(message)
        var encoded: [MessageCodec: Result<WebSocketPreparedMessage, CodecError>] = [:]
        var failures: [BroadcastFailure] = []
        var batches: [MessageCodec?: (prepared: WebSocketPreparedMessage, targets: [GatewayConnection], sockets: [WebSocket])] = [:]
        var queued = 0
        for connection in selection.local where excluding.isEmpty || !excluding.contains(connection.id) {
            if let owner = connection.reservedFor {
                failures.append(Self.failure(connection, .reserved, GatewayError.socketReserved(connection.id.rawValue, owner: owner).description))
                continue
            }
            var prepared = plain
            if let codec = connection.codec {
                let result = encoded[codec] ?? codec.encode(message).map { WebSocketPreparedMessage($0) }
                encoded[codec] = result
                switch result {
                case .success(let value): prepared = value
                case .failure(let error):
                    failures.append(Self.failure(connection, .codec, "invalid message for its codec: \(error.reason)"))
                    continue
                }
            }
            if prepared.size > connection.maxMessageSize {
                failures.append(Self.failure(connection, .tooLarge, "message too large (\(prepared.size) bytes, limit \(connection.maxMessageSize))"))
            } else if connection.isOpen, let socket = connection.socket {
                batches[connection.codec, default: (prepared, [], [])].targets.append(connection)
                batches[connection.codec]!.sockets.append(socket)
            } else if let link = connection.link, !connection.isClosing {
                if let error = link.enqueueDetached(prepared) {
                    failures.append(Self.failure(connection, BroadcastFailure.Reason(error.kind), error.description))
                } else {
                    queued += 1
                }
            } else {
                failures.append(Self.failure(connection, .closed, "closed meanwhile"))
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
                if let leftOut = self.logThrottle.admit("slow consumer") {
                    var metadata = connection.logMetadata
                    if leftOut > 0 { metadata["left_out"] = "\(leftOut)" }
                    self.configuration.logger.warning("slow consumer: broadcast not delivered", metadata: metadata)
                }
                if connection.slowConsumer == .close {
                    connection.startClose(code: .policyViolation, reason: "slow consumer")
                }
                failures.append(Self.failure(connection, .slowConsumer, "slow consumer (outbound queue full)"))
            case .connectionClosed, .connectionClosing:
                failures.append(Self.failure(connection, .closed, "closed meanwhile"))
            default:
                failures.append(Self.failure(connection, .sendFailed, "\(error)"))
            }
        }
        for (index, connection) in targets.enumerated() where !failed.contains(index) {
            connection.countOutbound(bytes: prepared.size)
        }
        return targets.count - failed.count
    }

    private static func failure(_ connection: GatewayConnection, _ reason: BroadcastFailure.Reason, _ error: String) -> BroadcastFailure {
        BroadcastFailure(socketID: connection.id, socketType: connection.type, uri: connection.uri, reason: reason, error: error)
    }
}
