import NIOConcurrencyHelpers
import NIOCore

/// The events of one connection; see ``WebSocket/events``.
public struct WebSocketEvents: AsyncSequence, Sendable {
    public typealias Element = WebSocketEvent
    public typealias Failure = Never

    let base: WebSocketChannelHandler.Producer
    let shared: NIOLockedValueBox<SharedReaderState>
    let onBarrier: @Sendable () -> Void
    let onWait: @Sendable (Int) -> Void

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.base.makeAsyncIterator(), shared: self.shared, onBarrier: self.onBarrier, onWait: self.onWait)
    }

    /// Iterates the events; taking a close or error event lets a pending close go out.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: WebSocketChannelHandler.Producer.AsyncIterator
        /// The reader's progress, which the connection reads when a close decides whether to wait for it.
        let shared: NIOLockedValueBox<SharedReaderState>
        let onBarrier: @Sendable () -> Void
        let onWait: @Sendable (Int) -> Void

        public mutating func next() async -> WebSocketEvent? {
            let taken = self.shared.withLockedValue {
                $0.progress.waiting = true
                return $0.progress.taken
            }
            self.onWait(taken)
            let event = await self.base.next()
            self.shared.withLockedValue {
                $0.progress.waiting = false
                $0.progress.taken += 1
            }
            switch event {
            case .error?, .close?: self.onBarrier()
            default: break
            }
            return event
        }
    }
}
