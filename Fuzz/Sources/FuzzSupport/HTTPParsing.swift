import NIOCore
import NIOEmbedded
import NIOHTTP1

/// HTTP/1 parsing as the WebSocket server and client set it up: SwiftNIO's decoders on an embedded channel, so a
/// target sees exactly the heads a connection's handshake handler would see for the same bytes.
public enum HTTPParsing {
    /// The request heads that the server's decoder reads from `bytes` (before a parse error, if any).
    public static func requestHeads(_ bytes: ArraySlice<UInt8>) -> [HTTPRequestHead] {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        } catch {
            fatalError("cannot set up the request decoder: \(error)")
        }
        // A malformed request is an error after the heads before it; those are still read.
        _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
        var heads: [HTTPRequestHead] = []
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .head(let head) = part { heads.append(head) }
        }
        return heads
    }

    /// The response heads that the client's decoder reads from `bytes` as the answer to `request` (1xx answers
    /// other than 101 are dropped, as the client's decoder does).
    public static func responseHeads(_ bytes: ArraySlice<UInt8>, to request: HTTPRequestHead) -> [HTTPResponseHead] {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try channel.pipeline.syncOperations.addHandlers(
                HTTPRequestEncoder(), ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)))
            // The decoder learns the request's method from the request going out (a HEAD answer has no body).
            try channel.writeOutbound(HTTPClientRequestPart.head(request))
            try channel.writeOutbound(HTTPClientRequestPart.end(nil))
            while try channel.readOutbound(as: ByteBuffer.self) != nil {}
        } catch {
            fatalError("cannot set up the response decoder: \(error)")
        }
        _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
        var heads: [HTTPResponseHead] = []
        while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
            if case .head(let head) = part { heads.append(head) }
        }
        return heads
    }
}
