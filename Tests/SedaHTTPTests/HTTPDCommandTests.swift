import Foundation
import Testing

/// The seda-httpd executable's argument checks, run as a process (the
/// executable is built beside the test bundle).
@Suite struct HTTPDCommandTests {
    /// The built seda-httpd, or nil when it is not beside the test bundle.
    static var executable: URL? {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let url = dir.appendingPathComponent("seda-httpd")
        return FileManager.default.isExecutableFile(atPath: url.path) ? url : nil
    }

    /// Durations too large for the server's integer clock (or not numbers)
    /// are usage errors (exit 64), not a trap in the conversion.
    @Test(arguments: [
        ["--header-timeout", "1e30"], ["--keepalive-timeout", "inf"], ["--bottleneck-ms", "1e300"],
        ["--response-time-target-ms", "inf"], ["--header-timeout", "nan"],
    ])
    func outOfRangeDurationsAreUsageErrors(arguments: [String]) throws {
        guard let executable = Self.executable else {
            print("seda-httpd is not built beside the tests (swift build --build-tests builds it): skipped")
            return
        }
        let p = Process()
        p.executableURL = executable
        p.arguments = ["--address", "127.0.0.1", "--port", "0"] + arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Bounded: a server that started after all is stopped (SIGTERM).
        let watchdog = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: watchdog)
        p.waitUntilExit()
        watchdog.cancel()
        #expect(p.terminationReason == .exit)
        #expect(p.terminationStatus == 64)
    }
}
