// swift-tools-version: 6.2
// TEMPORARY (iobench): only the load generators and baselines, until the
// benchmarks package lands on main; then these targets join its Package.swift.
import PackageDescription

let package = Package(
    name: "SedaBenchmarks",
    products: [
        .executable(name: "seda-load", targets: ["seda-load"]),
        .executable(name: "seda-loadgen", targets: ["seda-loadgen"]),
        .executable(name: "seda-baseline", targets: ["seda-baseline"]),
        .executable(name: "seda-nio-httpd", targets: ["seda-nio-httpd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        .target(
            name: "CSedaLoad",
            cSettings: [.enableWarning("all"), .enableWarning("extra")],
            linkerSettings: [.linkedLibrary("pthread"), .linkedLibrary("m")]
        ),
        .executableTarget(
            name: "seda-loadgen",
            dependencies: ["CSedaLoad"],
            cSettings: [.enableWarning("all"), .enableWarning("extra")]
        ),
        .executableTarget(
            name: "seda-baseline",
            dependencies: ["CSedaLoad"],
            cSettings: [.enableWarning("all"), .enableWarning("extra")],
            linkerSettings: [.linkedLibrary("uv")]
        ),
        .executableTarget(
            name: "seda-load",
            dependencies: [
                "CSedaLoad",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "seda-nio-httpd",
            dependencies: [
                "CSedaLoad",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
