// swift-tools-version:6.2
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "uni",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "UniKit", targets: ["UniKit"]),
        .library(name: "UniCLI", targets: ["UniCLI"]),
        .library(name: "UniKitTesting", targets: ["UniKitTesting"]),
        .library(name: "UniHTTP", targets: ["UniHTTP"]),
        .executable(name: "unid", targets: ["unid"]),
        .executable(name: "uni", targets: ["uni"]),
        .executable(name: "uni-otel", targets: ["uni-otel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPGRPC"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        // The SQLite VM store (`unid --vm-store sqlite`); links the system
        // libsqlite3 (Debian: libsqlite3-dev, installed by scripts/setup.sh).
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        // SHA-256 of image blobs (OCI digests).
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        // Tests only: the workflows, alert rules and OpenAPI document are YAML.
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // The model, errors and JSON coding: what the CLI shares with the
        // daemon. Foundation only, so `uni` starts fast (docs/performance.md).
        .target(
            name: "UniCore",
            swiftSettings: strictSettings
        ),
        // The few libc calls Swift's Glibc module does not declare.
        .target(name: "CUniSystem"),
        .target(
            name: "UniKit",
            dependencies: [
                "UniCore",
                "CUniSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                // The OCI registry client (push, pull).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "UniKitTesting",
            dependencies: ["UniKit"],
            swiftSettings: strictSettings
        ),
        // The CLI's commands and its API client: POSIX sockets, no SwiftNIO.
        .target(
            name: "UniCLI",
            dependencies: [
                "UniCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "UniHTTP",
            dependencies: [
                // UniCLI for CLIRendering: the dashboard formats numbers as `uni` does.
                "UniKit", "UniCLI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "unid",
            dependencies: [
                "UniKit", "UniHTTP", "UniCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "uni",
            dependencies: ["UniCLI"],
            swiftSettings: strictSettings
        ),
        // `uni` with OTLP export: `uni` execs it when spans are asked for.
        .executableTarget(
            name: "uni-otel",
            dependencies: [
                "UniCLI", "UniCore", "UniHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "UniKitTests",
            dependencies: [
                "UniKit", "UniKitTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "UniHTTPTests",
            dependencies: [
                "UniKit", "UniKitTesting", "UniHTTP", "UniCLI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        // The registry client against a real registry (docker-registry,
        // skopeo: scripts/setup.sh installs them) and an in-process fake.
        // The real registry the registry and integration tests start.
        .target(
            name: "RegistryTestSupport",
            dependencies: ["UniKit", "UniKitTesting", .product(name: "AsyncHTTPClient", package: "async-http-client")],
            path: "Tests/RegistryTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "RegistryTests",
            dependencies: [
                "UniKit", "UniKitTesting", "RegistryTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "UniKit", "UniKitTesting", "UniHTTP", "UniCLI", "RegistryTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
