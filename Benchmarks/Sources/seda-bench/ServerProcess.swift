import Glibc

/// A line on stderr (progress of the long benchmarks).
func ioProgress(_ s: String) {
    var line = s
    line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}

/// A line on stdout, written at once (a parent process waits for it).
func announce(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = Glibc.write(1, $0.baseAddress, $0.count) }
}

/// The directory this executable lives in (the other benchmark programs are
/// built beside it).
func executableDirectory() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { return "." }
    let path = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return String(path[..<slash])
}

/// The servers the socket benchmarks compare, and how to start each.
struct ServerSpec {
    let label: String
    let executable: String
    let arguments: [String]

    /// A Seda server (this executable's `serve`) in `lang` on `backend`.
    static func seda(
        lang: String, app: String, backend: String, threads: Int, acceptMode: String = "reuseport",
        idleTimeoutMs: Int = 0
    ) -> ServerSpec {
        var label = "seda-\(lang) \(backend)"
        if acceptMode != "reuseport" { label += " \(acceptMode)" }
        if idleTimeoutMs > 0 { label += " idle" }
        return ServerSpec(
            label: label, executable: executableDirectory() + "/seda-bench",
            arguments: [
                "serve", "--app", app, "--lang", lang, "--poller", backend, "--threads", "\(threads)",
                "--accept-mode", acceptMode, "--idle-timeout-ms", "\(idleTimeoutMs)",
            ])
    }

    /// A server of `seda-baseline` (LOAD.md).
    static func baseline(_ name: String, _ arguments: [String] = []) -> ServerSpec {
        ServerSpec(
            label: name, executable: executableDirectory() + "/seda-baseline", arguments: [name] + arguments)
    }

    /// Starts it (GnutellaLoad.swift's ServerProcess: a child whose stdout
    /// gives the port, stopped with SIGINT).
    func start() throws -> ServerProcess {
        guard access(executable, X_OK) == 0 else { throw BenchError("\(label): \(executable) is not built") }
        return try ServerProcess(name: label, argv: [executable] + arguments)
    }
}
