// swift-tools-version:6.1
// Tally's benchmarks, kept out of the main package so that ordo-one/benchmark (and its malloc
// interposer) never reach tallyd's dependency graph. Build here, with this package's own
// scratch directory: `cd Benchmarks && swift build -c release`. See docs/performance.md.
import PackageDescription

let package = Package(
    name: "TallyBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Tally", path: ".."),
        // Only the MallocInterposer trait: the default RuntimeInterposer trait would pull in
        // ordo-one/swift-runtime-interposer, which is not mirrored here.
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // What the benchmark target and the load generator share: the raw RocksDB baseline and
        // the event-sized records it writes.
        .target(
            name: "BenchSupport",
            dependencies: [.product(name: "TallyEngine", package: "Tally")]
        ),
        // `swift package benchmark --target AppendPath`: the append path against raw RocksDB.
        .executableTarget(
            name: "AppendPath",
            dependencies: [
                "BenchSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TallyEngine", package: "Tally"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/AppendPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // `swift package benchmark --target JSONDecode`: JSONParser vs JSONDecoder vs JSONSerialization.
        .executableTarget(
            name: "JSONDecode",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TallyClient", package: "Tally"), // carries TallyProtocol
            ],
            path: "Benchmarks/JSONDecode",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // `tally-load`: pipelining socket clients against a running tallyd, plus a same-disk baseline.
        .executableTarget(
            name: "tally-load",
            dependencies: [
                "BenchSupport",
                .product(name: "TallyClient", package: "Tally"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `tally-scenarios`: usage, credit, replay and snapshot benchmarks (run-scenarios.sh).
        .executableTarget(
            name: "tally-scenarios",
            dependencies: [
                "BenchSupport",
                .product(name: "TallyClient", package: "Tally"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ]
)
