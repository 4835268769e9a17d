// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "presence",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Presence", targets: ["Presence"]),
        .executable(name: "presence", targets: ["PresenceAPI"]),
        // Child processes that are never signalled once reaped, a private redis-server and a local
        // Redis Cluster: for tools and tests (the example node's tests use it), not part of the
        // Presence library.
        .library(name: "PresenceEmbedded", targets: ["PresenceEmbedded"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // Webhook delivery: the HTTP client that POSTs batches, and HMAC-SHA256 to sign them.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.100.0"),
    ],
    targets: [
        // hiredis 0.14 from Debian's libhiredis-dev; headers live in /usr/include, so no pkg-config
        // (its -D_FILE_OFFSET_BITS=64 flag is refused by SwiftPM).
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "Presence",
            dependencies: [
                "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Child processes and the embedded redis-server behind `presence serve` without --redis,
        // also used by the tests to start their own servers, and LocalRedisCluster (a Redis
        // Cluster of local redis-servers driven by redis-cli, for tests, the demo and tools). Kept out of the `Presence` library
        // product, which holds only what an embedding server needs.
        .target(
            name: "PresenceEmbedded",
            dependencies: [
                "Presence",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The `presence` command: serve (HTTP API), sweep, nodes, lookup.
        .executableTarget(
            name: "PresenceAPI",
            dependencies: [
                "Presence",
                "PresenceEmbedded",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The status page served at `/`, compiled into the binary (PackageResources.<file>_<ext>).
            resources: [
                .embedInCode("StatusPage/index.html"),
                .embedInCode("StatusPage/status.css"),
                .embedInCode("StatusPage/status.js"),
                .embedInCode("StatusPage/icon.svg"),
            ],
            swiftSettings: swiftSettings
        ),
        // The benchmark modes behind scripts/bench (and scripts/soak).
        .executableTarget(
            name: "PresenceBench",
            dependencies: ["Presence", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Real redis-server processes and helpers shared by the test targets.
        .target(
            name: "PresenceTestSupport",
            dependencies: ["Presence", "PresenceEmbedded", .product(name: "Logging", package: "swift-log")],
            path: "Tests/PresenceTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PresenceTests",
            dependencies: [
                "Presence",
                "PresenceTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The process helpers and the embedded server on their own.
        .testTarget(
            name: "PresenceEmbeddedTests",
            dependencies: ["PresenceEmbedded", "PresenceTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PresenceAPITests",
            dependencies: [
                "PresenceAPI",
                "Presence",
                "PresenceEmbedded",
                "PresenceTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
