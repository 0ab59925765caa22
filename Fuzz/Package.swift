// swift-tools-version: 6.2
//
// A libFuzzer target for seda-httpd's request path (parser, validation,
// path resolution, response writing), a package of its own so that the
// fuzzer's build flags never reach Seda's. Run it with script/fuzz-http
// (a short run for CI, a longer one with --minutes), which builds
//   swift build --package-path Fuzz -c release --sanitize=address \
//       -Xswiftc -sanitize=fuzzer -Xswiftc -DSEDA_FUZZ
// Without -DSEDA_FUZZ the same program replays inputs given as files.
import PackageDescription

let package = Package(
    name: "SedaFuzz",
    products: [
        .executable(name: "seda-http-fuzz", targets: ["seda-http-fuzz"])
    ],
    dependencies: [
        .package(name: "Seda", path: "..")
    ],
    targets: [
        .executableTarget(
            name: "seda-http-fuzz",
            dependencies: [.product(name: "SedaHTTP", package: "Seda")]
        )
    ],
    swiftLanguageModes: [.v6]
)
