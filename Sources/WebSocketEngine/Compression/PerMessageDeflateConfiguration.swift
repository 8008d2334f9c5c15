/// Settings for the permessage-deflate extension (RFC 7692), the same type for servers and clients.
///
/// "Local" settings are about what this endpoint sends, "peer" settings are what it asks the other end to do.
public struct PerMessageDeflateConfiguration: Sendable, Hashable {
    /// Reset this endpoint's compression context after every message (`server_no_context_takeover` for a server,
    /// `client_no_context_takeover` for a client). Saves memory at the cost of compression ratio.
    public var noContextTakeover: Bool
    /// Ask the peer to reset its compression context after every message.
    public var requestPeerNoContextTakeover: Bool
    /// The largest LZ77 window (8...15 bits) this endpoint compresses with.
    public var maxWindowBits: Int
    /// The largest window (8...15 bits) to ask the peer to compress with; `nil` asks for nothing.
    public var requestedPeerMaxWindowBits: Int?
    /// Messages smaller than this many bytes are sent uncompressed (compression rarely pays for them).
    public var minimumMessageSize: Int
    /// zlib compression level, 1 (fastest) to 9 (smallest).
    public var compressionLevel: Int
    /// zlib memory level, 1 to 9: less memory per connection, slower and weaker compression.
    public var memoryLevel: Int

    /// Creates a configuration; the defaults accept every standard offer and compress messages of 32 bytes or more.
    public init(
        noContextTakeover: Bool = false,
        requestPeerNoContextTakeover: Bool = false,
        maxWindowBits: Int = 15,
        requestedPeerMaxWindowBits: Int? = nil,
        minimumMessageSize: Int = 32,
        compressionLevel: Int = 6,
        memoryLevel: Int = 8
    ) {
        precondition((8...15).contains(maxWindowBits), "maxWindowBits must be in 8...15")
        precondition(requestedPeerMaxWindowBits.map { (8...15).contains($0) } ?? true, "window bits must be in 8...15")
        precondition((1...9).contains(compressionLevel), "compressionLevel must be in 1...9")
        precondition((1...9).contains(memoryLevel), "memoryLevel must be in 1...9")
        self.noContextTakeover = noContextTakeover
        self.requestPeerNoContextTakeover = requestPeerNoContextTakeover
        self.maxWindowBits = maxWindowBits
        self.requestedPeerMaxWindowBits = requestedPeerMaxWindowBits
        self.minimumMessageSize = minimumMessageSize
        self.compressionLevel = compressionLevel
        self.memoryLevel = memoryLevel
    }
}
