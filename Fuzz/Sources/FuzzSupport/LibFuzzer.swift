import CLibFuzzer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What libFuzzer calls for every input (the signature of `LLVMFuzzerTestOneInput`); it returns 0.
public typealias FuzzTestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// Runs libFuzzer on `testOneInput` with this process's command line (libFuzzer's options, corpus directories or
/// inputs to replay) and exits with libFuzzer's status.
///
/// A fuzz target's `main.swift` calls this: SwiftPM links an executable's entry point under a name of its own, so
/// the `main` of libFuzzer's runtime is never used, and `-parse-as-library` (which drops the entry point) cannot
/// be used with SwiftPM on Linux.
public func runLibFuzzer(_ testOneInput: FuzzTestOneInput) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}
