// swift-tools-version: 6.2
//
// Seda's benchmarks, a package of their own (as swift-nio keeps its
// benchmarks): their dependencies (swift-argument-parser, hdrhistogram-swift,
// swift-async-algorithms) never reach an application that depends on Seda.
// Build and run from the repository root with `script/run`, or here with
//   swift run -c release seda-bench --help
//
// Seda is the package one directory up. A path dependency's identity is its
// directory's name, which differs between clones (`swift`, `main`, a CI
// checkout...), so it is named explicitly and products refer to "Seda".
import PackageDescription

let package = Package(
    name: "SedaBenchmarks",
    products: [
        .executable(name: "seda-bench", targets: ["seda-bench"]),
        // The load generators, anchors and baselines (LOAD.md).
        .executable(name: "seda-load", targets: ["seda-load"]),
        .executable(name: "seda-loadgen", targets: ["seda-loadgen"]),
        .executable(name: "seda-baseline", targets: ["seda-baseline"]),
        .executable(name: "seda-nio-httpd", targets: ["seda-nio-httpd"]),
    ],
    dependencies: [
        .package(name: "Seda", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Only seda-nio-httpd, the SwiftNIO server written for the comparison, uses it.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        // Benchmark kernels in C (queues, timers), so that every queue is
        // driven by the same compiled loops.
        .target(
            name: "CSedaBench",
            dependencies: [.product(name: "CSedaCore", package: "Seda")],
            cSettings: [.enableWarning("all"), .enableWarning("extra")],
            linkerSettings: [.linkedLibrary("ck")]
        ),
        .executableTarget(
            name: "seda-bench",
            dependencies: [
                .product(name: "Seda", package: "Seda"),
                .product(name: "SedaHTTP", package: "Seda"),
                "CSedaBench",
                "CSedaLoad",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // The clients' engines (aSocket, echo, seda-load's HTTP) in C over
        // epoll, and what the baselines share (the 8 KB page, listeners).
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
            linkerSettings: [.linkedLibrary("uv")]  // libuv1-dev: the echo anchor
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
