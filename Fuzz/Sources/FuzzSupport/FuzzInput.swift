/// An input of a fuzz target: leading option bytes, read one at a time (zero once the input is used up), then the
/// rest of the bytes.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    /// Copies the input libFuzzer passes to `LLVMFuzzerTestOneInput`.
    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        self.bytes = Array(UnsafeBufferPointer(start: data, count: data == nil ? 0 : size))
    }

    /// Takes the next byte, or 0 when none is left.
    public mutating func byte() -> UInt8 {
        guard self.offset < self.bytes.count else { return 0 }
        defer { self.offset += 1 }
        return self.bytes[self.offset]
    }

    /// The bytes after those taken.
    public var rest: ArraySlice<UInt8> {
        self.bytes[self.offset...]
    }

    /// The bytes after those taken, split at every `separator` (which no part contains).
    public func parts(separatedBy separator: UInt8) -> [ArraySlice<UInt8>] {
        self.rest.split(separator: separator, omittingEmptySubsequences: false)
    }
}

/// Stops the process with `message` when `condition` is false: libFuzzer reports it as a crash and keeps the input.
/// For properties that hold for every input (what the engine writes, it must be able to read back).
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fatalError("fuzz check failed: \(message())")
    }
}

/// `text` without leading and trailing spaces and tabs (as HTTP header values are read).
public func trimmed(_ text: String) -> String {
    let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
    return String(text.drop(while: isBlank).reversed().drop(while: isBlank).reversed())
}
