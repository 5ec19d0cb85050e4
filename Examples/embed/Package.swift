// swift-tools-version:6.2
import PackageDescription

// Runs a VM with UniKit, without unid: `swift run embed KERNEL [CMDLINE] [SECONDS]`.
// Built and run by the test suite (Tests/IntegrationTests/EmbedExampleTests.swift).
let package = Package(
    name: "embed",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` because a path dependency is otherwise known by its folder's
        // name, which is the name of wherever Uni was cloned to.
        .package(name: "uni", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "embed",
            dependencies: [.product(name: "UniKit", package: "uni")],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ]
)
