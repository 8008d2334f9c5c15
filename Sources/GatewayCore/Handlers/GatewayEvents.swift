import NIOCore
import WebSocketEngine

/// The events of one connection as the gateway hands them to a handler: `open` first, `close` last, with the
/// route's protection applied on the way (counters, inbound rate limit, idle action). Iterate it once.
public struct GatewayEvents: AsyncSequence, Sendable {
    public typealias Element = GatewayEvent
    public typealias Failure = Never

    let connection: GatewayConnection
    let rateLimit: RateLimit?
    let idleAction: IdleAction
    let clock: any GatewayClock

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(
            base: self.connection.socket.events.makeAsyncIterator(),
            connection: self.connection,
            bucket: self.rateLimit.map { TokenBucket(limit: $0, now: self.clock.now()) },
            idleAction: self.idleAction,
            clock: self.clock)
    }

    /// Produces the gateway's events from the engine's.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: WebSocketEvents.AsyncIterator
        let connection: GatewayConnection
        var bucket: TokenBucket?
        let idleAction: IdleAction
        let clock: any GatewayClock
        var opened = false

        public mutating func next() async -> GatewayEvent? {
            guard self.opened else {
                self.opened = true
                return self.event(.open)
            }
            while let event = await self.base.next() {
                switch event {
                case .text(let text):
                    switch self.admit(bytes: text.utf8.count) {
                    case .admitted: return self.event(.text(text))
                    case .dropped: return self.event(.error("rate limit exceeded: message dropped"))
                    case .closing: continue
                    }
                case .binary(let data):
                    switch self.admit(bytes: data.readableBytes) {
                    case .admitted: return self.event(.binary(data))
                    case .dropped: return self.event(.error("rate limit exceeded: message dropped"))
                    case .closing: continue
                    }
                case .ping(let payload):
                    return self.event(.ping(payload))
                case .pong(let payload):
                    return self.event(.pong(payload))
                case .idleTimeout:
                    if self.idleAction == .close {
                        self.connection.markClosing()
                        self.connection.socket.startClose(code: .goingAway, reason: "idle timeout")
                    }
                    return self.event(.idleTimeout)
                case .error(let error):
                    return self.event(.error("\(error)"))
                case .close(let info):
                    self.connection.markClosing()
                    return self.event(.close(code: info.code.rawValue, reason: info.reason))
                }
            }
            return nil
        }

        private enum Admission {
            case admitted
            case dropped
            case closing
        }

        /// Counts an inbound message and applies the rate limit.
        private mutating func admit(bytes: Int) -> Admission {
            self.connection.countInbound(bytes: bytes)
            guard var bucket = self.bucket else { return .admitted }
            defer { self.bucket = bucket }
            if bucket.take(now: self.clock.now()) { return .admitted }
            self.connection.metrics.rateLimited(bucket.limit.onExceed)
            switch bucket.limit.onExceed {
            case .close:
                self.connection.markClosing()
                self.connection.socket.startClose(code: .policyViolation, reason: "rate limit exceeded")
                return .closing
            case .drop:
                return .dropped
            }
        }

        private func event(_ kind: GatewayEvent.Kind) -> GatewayEvent {
            GatewayEvent(kind: kind, connection: self.connection, timestamp: GatewayConnection.epochMilliseconds())
        }
    }
}
