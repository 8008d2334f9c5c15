import NIOCore

/// Per-connection settings shared by servers and clients. Every limit is finite by default.
public struct WebSocketConfiguration: Sendable {
    /// What a send does when the outbound queue is full.
    public enum OutboundBackpressure: Sendable, Hashable {
        /// The send waits until the queue drains below its limit (the default).
        case wait
        /// The send fails at once with ``WebSocketError/outboundQueueFull(limit:)``.
        case fail
    }

    /// Keepalive pings.
    public struct Keepalive: Sendable, Hashable {
        /// Time between pings.
        public var interval: TimeAmount
        /// How long to wait for the pong before failing the connection with 1001.
        public var timeout: TimeAmount

        /// Creates a keepalive setting.
        public init(interval: TimeAmount, timeout: TimeAmount) {
            self.interval = interval
            self.timeout = timeout
        }
    }

    /// The largest frame payload accepted (default 1 MiB); a larger frame closes the connection with 1009.
    public var maxFrameSize: Int
    /// The largest message accepted after decompression (default 1 MiB); a larger one closes with 1009.
    public var maxMessageSize: Int
    /// How long to wait for the peer's close frame, or a client for the server's TCP close (default 5 s).
    public var closeTimeout: TimeAmount
    /// Keepalive pings (default off).
    public var keepalive: Keepalive?
    /// Report an idle timeout event after this long without data either way (default off).
    public var idleTimeout: TimeAmount?
    /// permessage-deflate (RFC 7692) settings; `nil` (the default) neither offers nor accepts compression.
    public var compression: PerMessageDeflateConfiguration?
    /// Bytes that may wait in the outbound queue before sends wait or fail (default 1 MiB).
    public var outboundQueueSize: Int
    /// What a send does when the outbound queue is full (default: wait).
    public var outboundBackpressure: OutboundBackpressure
    /// Inbound events buffered for the application before the connection stops reading (default 16).
    public var inboundBufferedEvents: Int
    /// A bound on the outbound queues of every connection sharing it, beside this one's `outboundQueueSize`
    /// (default none: a gateway sets its own).
    public var outboundBudget: WebSocketOutboundBudget?
    /// Told of every wire byte read and written (default none), for totals across connections; each connection
    /// counts its own as well (``WebSocket/wireBytesReceived``).
    public var trafficObserver: (any WebSocketTrafficObserver)?

    /// Creates a configuration with the documented defaults.
    public init(
        maxFrameSize: Int = 1 << 20,
        maxMessageSize: Int = 1 << 20,
        closeTimeout: TimeAmount = .seconds(5),
        keepalive: Keepalive? = nil,
        idleTimeout: TimeAmount? = nil,
        compression: PerMessageDeflateConfiguration? = nil,
        outboundQueueSize: Int = 1 << 20,
        outboundBackpressure: OutboundBackpressure = .wait,
        inboundBufferedEvents: Int = 16
    ) {
        precondition(maxFrameSize > 0 && maxMessageSize > 0, "size limits must be positive")
        precondition(outboundQueueSize > 0 && inboundBufferedEvents > 0, "queue limits must be positive")
        self.maxFrameSize = maxFrameSize
        self.maxMessageSize = maxMessageSize
        self.closeTimeout = closeTimeout
        self.keepalive = keepalive
        self.idleTimeout = idleTimeout
        self.compression = compression
        self.outboundQueueSize = outboundQueueSize
        self.outboundBackpressure = outboundBackpressure
        self.inboundBufferedEvents = inboundBufferedEvents
    }
}
