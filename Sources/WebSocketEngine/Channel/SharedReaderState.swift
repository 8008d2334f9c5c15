import NIOCore

/// The delivery state shared with the application's tasks, behind the handler's lock (see
/// ``WebSocketChannelHandler/shared``).
struct SharedReaderState: Sendable {
    /// How far an `AsyncSequence` reader (``WebSocket/events``, ``WebSocket/receive()``) got: it takes events on
    /// its own task, which may run on any thread.
    var progress = ReaderProgress()
    /// Set when the events go to a consumer (``WebSocket/deliverEvents(consumer:)``): completed after the last one.
    /// Set from any thread, so that a second reader is refused at once.
    var delivery: EventLoopFuture<Void>?
}

/// Tells the handler, on its event loop, when the application drained events or stopped listening.
struct InboundDelegate: NIOAsyncSequenceProducerDelegate {
    let handler: NIOLoopBound<WebSocketChannelHandler>

    func produceMore() {
        self.handler.eventLoop.execute { self.handler.value.sequenceDrained() }
    }

    func didTerminate() {
        self.handler.eventLoop.execute { self.handler.value.readerGone() }
    }
}

/// How far an application reader got: whether it waits for the next event now, and how many it has taken.
struct ReaderProgress: Sendable, Equatable {
    var waiting = false
    /// Events the application has taken.
    var taken = 0
}
