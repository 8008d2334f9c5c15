import FuzzSupport

// libFuzzer's driver, started from this executable's entry point (SwiftPM names and links the entry point itself,
// so libFuzzer's own `main` cannot take its place); `fuzz` runs one input. (A closure, not `fuzz` itself: a C
// pointer to an `@_cdecl` function made in another file defines its C symbol twice in a debug build.)
runLibFuzzer { data, size in fuzz(data, size) }
