import Glibc

/// One seda-load run, as its CSV row (Benchmarks/Sources/seda-load/Row.swift
/// names the columns): `self["ok_per_s"]` etc.
struct LoadRow {
    let cells: [String: String]
    let line: String
    /// The CSV header line of the file it came from.
    let header: String

    subscript(_ column: String) -> Double { Double(cells[column] ?? "") ?? .nan }
    var label: String { cells["label"] ?? "?" }
    /// Requests that failed: bad responses, failed connects, unanswered at the end.
    var failures: Int { Int(self["errors"] + self["connect_errors"] + self["unanswered"]) }
}

/// Drives seda-load (built beside seda-bench) as a child process: its own
/// CPU and descriptors, its CSV rows appended to `csv`.
struct SedaLoadClient {
    let threads: Int
    let warmup: Double
    let drain: Double
    let verbose: Bool

    /// Closed loop: `clients` clients, `thinkMs` between requests, a new
    /// connection every `perConnection` requests.
    func closed(
        port: Int, label: String, clients: [Int], duration: Double, thinkMs: Double = 20, perConnection: Int = 100,
        path: String = "/index.html", csv: String?
    ) throws -> [LoadRow] {
        try run(
            port: port, label: label, duration: duration, path: path, csv: csv,
            arguments: [
                "--clients", clients.map(String.init).joined(separator: ","), "--think-ms", Stats.fixed(thinkMs, 3),
                "--requests-per-connection", "\(perConnection)",
            ], runs: clients.count)
    }

    /// Open loop: `rates` requests/s in turn over a pool of `connections`.
    func open(
        port: Int, label: String, rates: [Double], connections: Int, duration: Double, path: String, csv: String?
    ) throws -> [LoadRow] {
        try run(
            port: port, label: label, duration: duration, path: path, csv: csv,
            arguments: [
                "--rate", rates.map { Stats.fixed($0, 0) }.joined(separator: ","), "--connections", "\(connections)",
            ], runs: rates.count)
    }

    private func run(
        port: Int, label: String, duration: Double, path: String, csv: String?, arguments: [String], runs: Int
    ) throws -> [LoadRow] {
        let exe = executableDirectory() + "/seda-load"
        guard access(exe, X_OK) == 0 else { throw BenchError("\(exe) is not built") }
        let tmp = try temporaryPath("csv")
        unlink(tmp)  // seda-load writes its header only into a new file
        defer { unlink(tmp) }
        var argv = [
            exe, "run", "--port", "\(port)", "--label", label, "--path", path, "--warmup", Stats.fixed(warmup, 2),
            "--duration", Stats.fixed(duration, 2), "--drain", Stats.fixed(drain, 2), "--threads", "\(threads)",
            "--expect-bytes", "8192", "--csv", tmp,
        ]
        argv += arguments
        if !verbose { argv.append("--quiet") }
        // Bounded: each run's warm-up, window and drain, plus time to connect and start.
        let bound = Double(runs) * (warmup + duration + drain + 30) + 30
        let (status, out) = try runTool(argv, timeout: bound)
        guard status == 0 else { throw BenchError("seda-load exited with \(status) against \(label)") }
        if verbose { print(out) }
        let rows = try parseLoadCSV(tmp)
        guard rows.count == runs else { throw BenchError("seda-load wrote \(rows.count) rows for \(runs) runs") }
        if let csv { try appendLoadRows(rows, to: csv) }
        return rows
    }
}

/// Reads a CSV written by seda-load --csv.
func parseLoadCSV(_ path: String) throws -> [LoadRow] {
    guard let text = readTextFile(path) else { throw BenchError("cannot read \(path)") }
    let lines = text.split(separator: "\n").map(String.init)
    guard let header = lines.first?.split(separator: ",").map(String.init) else { return [] }
    return lines.dropFirst().map { line in
        let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var d: [String: String] = [:]
        for (k, v) in zip(header, cells) { d[k] = v }
        return LoadRow(cells: d, line: line, header: lines[0])
    }
}

/// Appends rows to a seda-load CSV (with the header when the file is new),
/// so that `seda-load plot --csv` draws them.
func appendLoadRows(_ rows: [LoadRow], to path: String) throws {
    guard let first = rows.first else { return }
    var text = access(path, F_OK) != 0 ? first.header + "\n" : ""
    text += rows.map(\.line).joined(separator: "\n") + "\n"
    try writeTextFile(path, text, append: true)
}

/// A unique path under /tmp ending in `.ext` (the file exists, empty).
func temporaryPath(_ ext: String) throws -> String {
    var template = Array("/tmp/seda-bench-http-XXXXXX.\(ext)".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, Int32(ext.count + 1)) }
    guard fd >= 0 else { throw BenchError("mkstemps: \(String(cString: strerror(errno)))") }
    close(fd)
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// One wrk run's figures.
struct WrkResult {
    var requestsPerS: Double = 0
    var p50Ms: Double = .nan
    var p99Ms: Double = .nan
    var errors = 0  // socket errors (connect, read, write, timeout) and non-2xx/3xx responses
}

/// Runs wrk (Debian's `wrk`) against 127.0.0.1:port for whole seconds.
func runWrk(port: Int, path: String, connections: Int, threads: Int, seconds: Int, script: String? = nil) throws
    -> WrkResult
{
    guard let exe = HTTPServers.which("wrk") else { throw BenchError("wrk not installed (script/install-deps)") }
    var argv = [
        "wrk", "-t\(min(threads, connections))", "-c\(connections)", "-d\(max(seconds, 1))s", "--latency",
        "--timeout", "10s",
    ]
    if let script { argv += ["-s", script] }
    argv.append("http://127.0.0.1:\(port)\(path)")
    argv[0] = exe
    let (status, out) = try runTool(argv, timeout: Double(seconds) + 30)
    guard status == 0 else { throw BenchError("wrk exited with \(status)") }
    return parseWrk(out)
}

/// wrk's report: "Requests/sec:", the latency distribution, the errors.
func parseWrk(_ text: String) -> WrkResult {
    var r = WrkResult()
    for raw in text.split(separator: "\n") {
        let words = raw.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let first = words.first else { continue }
        if first == "Requests/sec:", words.count > 1 { r.requestsPerS = Double(words[1]) ?? 0 }
        if first == "50%", words.count > 1 { r.p50Ms = wrkMs(words[1]) }
        if first == "99%", words.count > 1 { r.p99Ms = wrkMs(words[1]) }
        if first == "Socket" {  // Socket errors: connect 0, read 0, write 0, timeout 0
            r.errors += words.compactMap { Int($0.trimmingSuffix(",")) }.reduce(0, +)
        }
        if first == "Non-2xx", let n = words.last.flatMap({ Int($0) }) { r.errors += n }
    }
    return r
}

/// A wrk duration ("812.00us", "1.20ms", "2.01s", "1.00m") in ms.
func wrkMs(_ s: String) -> Double {
    for (unit, scale) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0), ("h", 3_600_000.0)]
    where s.hasSuffix(unit) {
        if let v = Double(s.dropLast(unit.count)) { return v * scale }
    }
    return .nan
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
