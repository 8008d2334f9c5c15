import FuzzSupport

// libFuzzer's driver, started from this executable's entry point (SwiftPM names and links the entry point itself,
// so libFuzzer's own `main` cannot take its place); `fuzz` runs one input.
runLibFuzzer(fuzz)
