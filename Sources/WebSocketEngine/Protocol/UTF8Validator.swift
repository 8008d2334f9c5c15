/// Incremental UTF-8 validator (RFC 3629, as required for WebSocket text by RFC 6455 §8.1).
///
/// It keeps only the state of a partially received code point, so text can be checked chunk by chunk as it
/// arrives (across fragments, TCP segments and decompression output) and fails at the first byte that can no
/// longer start or continue a valid sequence: overlong forms, surrogates and code points above U+10FFFF included.
public struct UTF8Validator: Sendable, Hashable {
    /// Continuation bytes still expected for the current code point.
    private var pending: UInt8 = 0
    /// The range the next continuation byte must fall into (narrower than 0x80...0xBF after E0, ED, F0, F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    /// Creates a validator at a code point boundary.
    public init() {}

    /// Whether the bytes seen so far end on a code point boundary (a message may end here).
    public var isAtBoundary: Bool { self.pending == 0 }

    /// Feeds more bytes; returns `false` as soon as a byte makes the text invalid.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            if self.pending == 0 {
                // ASCII fast path: eight bytes at a time while none has its high bit set.
                while index &+ 8 <= count {
                    let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    if word & 0x8080_8080_8080_8080 != 0 { break }
                    index &+= 8
                }
                if index >= count { return true }
            }
            let byte = bytes[index]
            index &+= 1
            if self.pending == 0 {
                switch byte {
                case 0x00...0x7F:
                    continue
                case 0xC2...0xDF:
                    self.expect(1, 0x80, 0xBF)
                case 0xE0:
                    self.expect(2, 0xA0, 0xBF)
                case 0xE1...0xEC, 0xEE...0xEF:
                    self.expect(2, 0x80, 0xBF)
                case 0xED:
                    self.expect(2, 0x80, 0x9F)
                case 0xF0:
                    self.expect(3, 0x90, 0xBF)
                case 0xF1...0xF3:
                    self.expect(3, 0x80, 0xBF)
                case 0xF4:
                    self.expect(3, 0x80, 0x8F)
                default:
                    return false
                }
            } else {
                guard byte >= self.lower, byte <= self.upper else { return false }
                self.lower = 0x80
                self.upper = 0xBF
                self.pending &-= 1
            }
        }
        return true
    }

    /// Feeds the bytes of a collection (convenience for tests and small inputs).
    public mutating func validate<Bytes: Sequence>(bytes: Bytes) -> Bool where Bytes.Element == UInt8 {
        let array = Array(bytes)
        return array.withUnsafeBytes { self.validate($0) }
    }

    private mutating func expect(_ count: UInt8, _ lower: UInt8, _ upper: UInt8) {
        self.pending = count
        self.lower = lower
        self.upper = upper
    }
}
