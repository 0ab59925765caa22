// swift-tools-version: 6.2
//
// Seda: the Staged Event-Driven Architecture, a C core with a Swift library.
// The C core builds with CMake too (CMakeLists.txt); both builds compile the
// same files under Sources/CSedaCore, whose public headers live in include/.
//
// Products, so that an application pays only for what it imports:
//   Seda                  the core: stages, sinks, handlers, admission control,
//                         controllers, timers, the profiler's snapshots and
//                         stage graph. Depends on CSedaCore and swift-log only.
//   CSedaCore             the C core, for Swift code that calls it directly.
//   SedaConfiguration     stage settings from a JSON file and the environment
//                         (swift-configuration).
//   SedaMetrics           stage statistics through swift-metrics.
//   SedaPrometheus        a Prometheus registry to serve them (swift-prometheus).
//   SedaServiceLifecycle  `Runtime` as a swift-service-lifecycle `Service`.
//
// The benchmarks (seda-bench and their C kernels) are a package of their own
// under Benchmarks/, as swift-nio keeps its benchmarks: their dependencies
// (swift-argument-parser, hdrhistogram-swift, swift-async-algorithms) never
// reach a user of this package.
import PackageDescription

let package = Package(
    name: "Seda",
    products: [
        .library(name: "Seda", targets: ["Seda"]),
        .library(name: "CSedaCore", targets: ["CSedaCore"]),
        .library(name: "SedaConfiguration", targets: ["SedaConfiguration"]),
        .library(name: "SedaMetrics", targets: ["SedaMetrics"]),
        .library(name: "SedaPrometheus", targets: ["SedaPrometheus"]),
        .library(name: "SedaServiceLifecycle", targets: ["SedaServiceLifecycle"]),
        // The applications, as libraries with thin executables (when they land):
        .library(name: "SedaHTTP", targets: ["SedaHTTP"]),
        .executable(name: "seda-httpd", targets: ["seda-httpd"]),
        .library(name: "SedaGnutella", targets: ["SedaGnutella"]),
        .executable(name: "seda-gnutella", targets: ["seda-gnutella"]),
    ],
    dependencies: [
        // The core's only Swift dependency.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The integrations' (each reaches only the product that needs it).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The applications' command lines only (never a library target).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // MARK: The C core
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

        // MARK: The Swift core
        .target(
            name: "Seda",
            dependencies: [
                "CSedaCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: Integrations, one product each
        .target(
            name: "SedaConfiguration",
            dependencies: [
                "Seda",
                .product(name: "Configuration", package: "swift-configuration"),
            ]
        ),
        .target(
            name: "SedaMetrics",
            dependencies: [
                "Seda",
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "SedaPrometheus",
            dependencies: [
                "SedaMetrics",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "SedaServiceLifecycle",
            dependencies: [
                "Seda",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // MARK: Applications (when they land): the stages as a library, a thin executable
        // Haboob's stages (parse, page cache, file read, respond) over
        // Debian's http_parser (libhttp-parser-dev), with a small C shim (openat2).
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
            dependencies: [
                "Seda", "SedaPrometheus", "CHTTPParser", "CSedaHTTP",
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: [.linkedLibrary("http_parser")]
        ),
        .executableTarget(
            name: "seda-httpd",
            dependencies: [
                "SedaHTTP",
                "Seda",
                "SedaConfiguration",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "SedaGnutella", dependencies: ["Seda"]),
        .executableTarget(
            name: "seda-gnutella",
            dependencies: [
                "SedaGnutella",
                "Seda",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // with tests in Tests/SedaHTTPTests and Tests/SedaGnutellaTests.

        // MARK: Tests
        // The raw clients' loopback connect, shared by the test suites.
        .target(name: "SedaTestSupport", path: "Tests/SedaTestSupport"),
        .testTarget(
            name: "SedaHTTPTests",
            dependencies: ["SedaHTTP", "SedaTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "SedaTests",
            dependencies: [
                "Seda",
                "SedaConfiguration",
                "SedaMetrics",
                "SedaPrometheus",
                "SedaServiceLifecycle",
                "SedaTestSupport",
            ]
        ),
        .testTarget(name: "SedaGnutellaTests", dependencies: ["SedaGnutella", "SedaTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

// The documentation plugin, only when building the docs (script/test sets
// SEDA_DOCS=1), so that an application depending on Seda never fetches it.
if Context.environment["SEDA_DOCS"] == "1" {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"))
}
