import NIOCore

/// The connection's share of a ``WebSocketOutboundBudget``: what its outbound queue holds is read after each flush
/// (SwiftNIO writes what the socket takes during the flush), and while something is left a marker write tells
/// when it has drained, so the total never keeps bytes that have left.
extension WebSocketChannelHandler {
    /// Reports the queue's size to the budget, and watches a queue that did not drain.
    func observeOutboundQueue() {
        guard let budget = self.configuration.outboundBudget, let context = self.context else { return }
        let queued = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        if queued != self.budgetedBytes {
            budget.add(queued - self.budgetedBytes)
            self.budgetedBytes = queued
        }
        guard queued > 0, !self.watchingDrain else { return }
        // An empty write completes once everything written before it has left.
        self.watchingDrain = true
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer()), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { _ in
            self.watchingDrain = false
            self.observeOutboundQueue()
        }
    }

    /// Whether the budget shared with other connections leaves this one room: always while its queue is empty, and
    /// always for a connection whose sends wait for room (they wait for the socket's writability only).
    var budgetHasRoom: Bool {
        guard self.budgetedBytes > 0, self.configuration.outboundBackpressure == .fail,
            let budget = self.configuration.outboundBudget
        else { return true }
        return !budget.isExhausted
    }

    /// The connection ended: its bytes leave the budget.
    func releaseOutboundBudget() {
        guard self.budgetedBytes != 0 else { return }
        self.configuration.outboundBudget?.add(-self.budgetedBytes)
        self.budgetedBytes = 0
    }
}
