// swift-tools-version:6.1
import PackageDescription

// The measuring instruments, kept out of the main build: a load generator and the servers it measures.
let package = Package(
    name: "WebSocketGatewayBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "WebSocketGateway", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .executableTarget(
            name: "wsbench",
            dependencies: [
                .product(name: "WebSocketEngine", package: "WebSocketGateway"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "bench-gateway",
            dependencies: [
                .product(name: "GatewayCore", package: "WebSocketGateway"),
                .product(name: "WebSocketEngine", package: "WebSocketGateway"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ]
)
