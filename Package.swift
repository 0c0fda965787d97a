// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Tally",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tallyd", targets: ["tallyd"]),
        .executable(name: "tally", targets: ["tally"]),
        // For Benchmarks/ and embedding: the engine over RocksDB, the server, and the client.
        .library(name: "TallyEngine", targets: ["TallyEngine", "TallyStorage", "TallyCore", "RocksDB"]),
        .library(name: "TallyServer", targets: ["TallyServer"]),
        .library(name: "TallyClient", targets: ["TallyClient", "TallyProtocol"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        // RocksDB's C API, found through pkg-config. Only the RocksDB wrapper imports it.
        .systemLibrary(
            name: "CRocksDB",
            pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]
        ),
        // The only caller of rocksdb_*: handles, typed errors, batches, iterators, snapshots, checkpoints.
        .target(name: "RocksDB", dependencies: ["CRocksDB"], swiftSettings: strict),
        // Pure domain: exact amounts, timestamps, events and their codec, rules, projections as folds.
        .target(name: "TallyCore", swiftSettings: strict),
        // Key layout, the event log with its hash chain, projection and idempotency storage.
        .target(
            name: "TallyStorage",
            dependencies: [
                "RocksDB", "TallyCore", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        // The single writer with group commit, reads, startup recovery and projection rebuild.
        .target(
            name: "TallyEngine",
            dependencies: ["TallyStorage", "TallyCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // JSON, JSON-RPC 2.0 envelopes, method params/results, the error table.
        .target(name: "TallyProtocol", dependencies: ["TallyCore"], resources: [.embedInCode("openrpc.json")], swiftSettings: strict),
        // The Unix-socket server: framing, limits, dispatch, lifecycle. No business rules.
        .target(
            name: "TallyServer",
            dependencies: [
                "TallyEngine", "TallyProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tallyd",
            dependencies: [
                "TallyServer", "TallyEngine", "TallyCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // A small blocking client for the socket protocol (CLI, tests, load generator).
        .target(name: "TallyClient", dependencies: ["TallyProtocol"], swiftSettings: strict),
        .executableTarget(
            name: "tally",
            dependencies: [
                // TallyEngine for `tally snapshot verify`, which checks a snapshot where it lies, without a daemon.
                "TallyClient", "TallyProtocol", "TallyEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "RocksDBTests", dependencies: ["RocksDB"]),
        .testTarget(name: "TallyCoreTests", dependencies: ["TallyCore"]),
        .testTarget(name: "TallyProtocolTests", dependencies: ["TallyProtocol", "TallyCore"]),
        .testTarget(
            name: "TallyEngineTests",
            dependencies: ["TallyEngine", "TallyStorage", "TallyCore", "RocksDB", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(name: "TallyServerTests", dependencies: ["TallyServer", "TallyProtocol", "TallyCore"]),
        .testTarget(
            name: "TallyLiveTests",
            dependencies: ["TallyClient", "TallyProtocol", "TallyServer", "tallyd", "tally"]
        ),
    ]
)
