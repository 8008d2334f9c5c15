import NIOConcurrencyHelpers
import NIOCore

/// One shared object per event loop, made on first use and kept for the life of the process (executors and
/// sweepers that every connection of a loop uses, so that connections do not each carry their own).
final class PerEventLoop<Value: Sendable>: Sendable {
    private let values = NIOLockedValueBox<[ObjectIdentifier: Value]>([:])
    private let make: @Sendable (any EventLoop) -> Value

    init(_ make: @escaping @Sendable (any EventLoop) -> Value) {
        self.make = make
    }

    /// The one value of `eventLoop`.
    func of(_ eventLoop: any EventLoop) -> Value {
        self.values.withLockedValue { values in
            let key = ObjectIdentifier(eventLoop)
            if let value = values[key] { return value }
            let value = self.make(eventLoop)
            values[key] = value
            return value
        }
    }
}
