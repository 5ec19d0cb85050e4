// swift-tools-version:6.1
import PackageDescription

// The benchmark suite lives in its own package so that package-benchmark
// stays out of the product's dependency graph. Run: scripts/bench.sh
let package = Package(
    name: "UniBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "uni", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "UniBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "UniHTTP", package: "uni"),
                .product(name: "UniKit", package: "uni"),
                .product(name: "UniKitTesting", package: "uni"),
            ],
            path: "Benchmarks/UniBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The dashboard over 100 fake VMs, for wrk: scripts/bench-ui.sh. Not
        // under Benchmarks/: package-benchmark runs every executable there as
        // a benchmark, and a server never ends.
        .executableTarget(
            name: "UIBenchServer",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "UniHTTP", package: "uni"),
                .product(name: "UniKit", package: "uni"),
                .product(name: "UniKitTesting", package: "uni"),
            ],
            path: "Tools/UIBenchServer"
        ),
        // RegistryClient push and pull timed for scripts/bench-registry.py.
        .executableTarget(
            name: "RegistryBench",
            dependencies: [
                .product(name: "UniKit", package: "uni"),
            ],
            path: "Tools/RegistryBench"
        ),
    ]
)
