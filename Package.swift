// swift-tools-version: 6.2
//
// Seda: the Staged Event-Driven Architecture, a C core with a Swift library.
// The C core builds with CMake too (CMakeLists.txt); both builds compile the
// same files under Sources/CSedaCore, whose public headers live in include/.
import PackageDescription

let package = Package(
    name: "Seda",
    products: [
        .library(name: "Seda", targets: ["Seda"]),
        .library(name: "CSedaCore", targets: ["CSedaCore"]),
        .executable(name: "seda-bench", targets: ["seda-bench"]),
        .library(name: "SedaHTTP", targets: ["SedaHTTP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CURing",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        .systemLibrary(
            name: "CAIO",
            providers: [.apt(["libaio-dev"])]
        ),
        .target(
            name: "CSedaCore",
            dependencies: ["CURing", "CAIO"],
            publicHeadersPath: "include",
            cSettings: [.enableWarning("all"), .enableWarning("extra")],
            // A module map's `link` does not reach C code on Linux.
            linkerSettings: [.linkedLibrary("uring"), .linkedLibrary("aio"), .linkedLibrary("pthread")]
        ),
        .target(
            name: "Seda",
            dependencies: [
                "CSedaCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "CSedaBench",
            dependencies: ["CSedaCore"],
            cSettings: [.enableWarning("all"), .enableWarning("extra")],
            linkerSettings: [.linkedLibrary("ck")]
        ),
        .executableTarget(
            name: "seda-bench",
            dependencies: [
                "Seda",
                "CSedaBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .testTarget(
            name: "SedaTests",
            dependencies: ["Seda"]
        ),
        // Haboob's stages as a library (parse, page cache, file read, respond).
        .systemLibrary(
            name: "CHTTPParser",
            providers: [.apt(["libhttp-parser-dev"])]
        ),
        .target(
            name: "CSedaHTTP",
            cSettings: [.enableWarning("all"), .enableWarning("extra")]
        ),
        .target(
            name: "SedaHTTP",
            dependencies: ["Seda", "CHTTPParser", "CSedaHTTP"],
            linkerSettings: [.linkedLibrary("http_parser")]
        ),
        .testTarget(
            name: "SedaHTTPTests",
            dependencies: ["SedaHTTP"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
