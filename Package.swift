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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
            dependencies: ["CSedaCore"]
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
            ]
        ),
        .testTarget(
            name: "SedaTests",
            dependencies: ["Seda"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
