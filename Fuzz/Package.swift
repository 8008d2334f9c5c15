// swift-tools-version:6.2
import PackageDescription

/// The settings of the main package's targets: its upcoming features, and no warnings.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

/// A libFuzzer target: one executable whose `LLVMFuzzerTestOneInput` runs one input through the gateway's own code.
func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, swiftSettings: strict)
}

// The libFuzzer targets, kept out of the main build (like Benchmarks/): built with
// `-sanitize=fuzzer,address` by scripts/fuzz.sh, each with a seed corpus in Corpus/<target>/.
let package = Package(
    name: "WebSocketGatewayFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "WebSocketGateway", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // What the targets share: reading an input's option bytes, HTTP parsing as the server and client do it, and
        // a connection on an embedded channel.
        // libFuzzer's driver, declared for Swift.
        .target(name: "CLibFuzzer"),
        .target(
            name: "FuzzSupport",
            dependencies: [
                "CLibFuzzer",
                .product(name: "WebSocketEngine", package: "WebSocketGateway"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        fuzzTarget("FuzzFrames", [
            .product(name: "WebSocketEngine", package: "WebSocketGateway"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        fuzzTarget("FuzzServerHandshake", [
            .product(name: "WebSocketEngine", package: "WebSocketGateway"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        fuzzTarget("FuzzClientHandshake", [
            .product(name: "WebSocketEngine", package: "WebSocketGateway"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        fuzzTarget("FuzzExtensions", [
            .product(name: "WebSocketEngine", package: "WebSocketGateway"),
        ]),
        fuzzTarget("FuzzConfig", [
            .product(name: "GatewayCore", package: "WebSocketGateway"),
            .product(name: "GatewayDaemon", package: "WebSocketGateway"),
        ]),
        fuzzTarget("FuzzCodecs", [
            .product(name: "GatewayCore", package: "WebSocketGateway"),
            .product(name: "WebSocketEngine", package: "WebSocketGateway"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        fuzzTarget("FuzzActions", [
            .product(name: "GatewayCore", package: "WebSocketGateway"),
            .product(name: "WebSocketEngine", package: "WebSocketGateway"),
        ]),
    ]
)
