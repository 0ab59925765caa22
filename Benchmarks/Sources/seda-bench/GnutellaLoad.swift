import CSedaLoad
import Glibc

/// One run of the Gnutella load generator (the C engine `sload_gnu_run`),
/// with its settings as Swift values.
struct GnutellaLoad {
    var connections = 100
    var threads = 1
    var rate = 1000.0
    /// Weights by type in the engine's order: ping, pong, push, query, query hit.
    var mix: [Double]? = nil
    var ttl = 7
    var burst = 1.0
    var burstOnMs = 100.0
    var clogged = 0
    var queryBytes = 12
    var warmup = 1.0
    var duration = 5.0
    var drain = 1.0
    var trace: String? = nil
    var traceSpeed = 1.0
    var record: String? = nil
    var serverPID: Int32 = 0
    var progress = false
    var seed: UInt64 = 1

    static let typeNames = ["ping", "pong", "push", "query", "queryhit"]

    func run(port: Int) throws -> GnutellaOutcome {
        var cfg = sload_gnu_config_t()
        sload_gnu_defaults(&cfg, UInt16(port), UInt32(connections), rate)
        cfg.threads = UInt32(threads)
        if let mix {
            withUnsafeMutableBytes(of: &cfg.mix) { raw in
                let m = raw.bindMemory(to: Double.self)
                for i in 0..<min(mix.count, m.count) { m[i] = mix[i] }
            }
        }
        cfg.ttl = UInt8(ttl)
        cfg.burst = burst
        cfg.burst_on_ms = burstOnMs
        cfg.clogged = UInt32(clogged)
        cfg.query_bytes = UInt32(queryBytes)
        cfg.warmup_s = warmup
        cfg.duration_s = duration
        cfg.drain_s = drain
        cfg.trace_speed = traceSpeed
        cfg.server_pid = serverPID
        cfg.progress = progress ? 1 : 0
        cfg.seed = seed
        let tracePath = trace.map { strdup($0) } ?? nil
        let recordPath = record.map { strdup($0) } ?? nil
        defer {
            free(tracePath)
            free(recordPath)
        }
        cfg.trace_path = UnsafePointer(tracePath)
        cfg.record_path = UnsafePointer(recordPath)
        var r = sload_gnu_result_t()
        let rc = sload_gnu_run(&cfg, &r)
        guard rc == 0 else { throw BenchError("gnutella load: \(String(cString: strerror(-rc)))") }
        defer { sload_gnu_result_free(&r) }
        return GnutellaOutcome(r)
    }
}

/// What a run measured (copied out of the C result).
struct GnutellaOutcome {
    struct Second {
        var t: Double
        var offered, delivered: UInt64
        var deliveredByType: [UInt64]
        var p99Micros: Double
        var rssKB: UInt64
        var open: UInt32
    }

    var connected, connectErrors, handshakeErrors, closedByServer, cloggedClosed, protocolErrors: UInt32
    var offered: [UInt64]
    var delivered: [UInt64]
    var p50Micros, p99Micros: [Double]
    var allP50Micros, allP99Micros, allMaxMicros: Double
    var windowSeconds: Double
    var backlogDrops, unanswerable: UInt64
    var timeline: [Second]
    var rssFirstKB, rssMaxKB, rssLastKB: UInt64

    init(_ r: sload_gnu_result_t) {
        connected = r.connected
        connectErrors = r.connect_errors
        handshakeErrors = r.handshake_errors
        closedByServer = r.closed_by_server
        cloggedClosed = r.clogged_closed
        protocolErrors = r.protocol_errors
        var r = r
        offered = withUnsafeBytes(of: &r.sent) { Array($0.bindMemory(to: UInt64.self)) }
        delivered = withUnsafeBytes(of: &r.received) { Array($0.bindMemory(to: UInt64.self)) }
        let hists = withUnsafeBytes(of: &r.latency) { Array($0.bindMemory(to: OpaquePointer?.self)) }
        p50Micros = hists.map { Double(sload_hist_quantile($0, 0.5)) / 1e3 }
        p99Micros = hists.map { Double(sload_hist_quantile($0, 0.99)) / 1e3 }
        allP50Micros = Double(sload_hist_quantile(r.latency_all, 0.5)) / 1e3
        allP99Micros = Double(sload_hist_quantile(r.latency_all, 0.99)) / 1e3
        allMaxMicros = Double(sload_hist_max(r.latency_all)) / 1e3
        windowSeconds = r.window_s
        backlogDrops = r.backlog_drops
        unanswerable = r.unanswerable
        timeline = (0..<Int(r.seconds)).map { i in
            var s = r.timeline[i]
            let byType = withUnsafeBytes(of: &s.received_type) { Array($0.bindMemory(to: UInt64.self)) }
            return Second(
                t: s.t, offered: s.sent, delivered: s.received, deliveredByType: byType,
                p99Micros: Double(s.p99_ns) / 1e3, rssKB: s.server_rss_kb, open: s.open)
        }
        rssFirstKB = r.rss_first_kb
        rssMaxKB = r.rss_max_kb
        rssLastKB = r.rss_last_kb
    }

    var offeredTotal: UInt64 { offered.reduce(0, +) }
    var deliveredTotal: UInt64 { delivered.reduce(0, +) }
    var offeredPerSecond: Double { Double(offeredTotal) / windowSeconds }
    var deliveredPerSecond: Double { Double(deliveredTotal) / windowSeconds }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A server process for one run: seda-gnutella or the anchor. Its stdout
/// gives the port; its stderr goes to a file read after the run (status lines).
final class ServerProcess {
    let name: String
    let pid: Int32
    let port: Int
    let stderrPath: String

    init(name: String, argv: [String]) throws {
        self.name = name
        var template = Array("/tmp/seda-bench-gnutella-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw BenchError("mkstemp: \(String(cString: strerror(errno)))") }
        close(fd)
        let errPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        stderrPath = errPath
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var p: Int32 = 0
        var out: Int32 = -1
        let rc = cargs.withUnsafeMutableBufferPointer { buf -> Int32 in
            buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) {
                sload_spawn($0, errPath, &p, &out)
            }
        }
        guard rc == 0 else { throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(-rc)))") }
        pid = p
        let port = sload_wait_port(out, 20)
        close(out)
        guard port > 0 else {
            _ = sload_stop(p, 2)
            throw BenchError("\(name) printed no port (\(String(cString: strerror(-port)))); stderr in \(errPath)")
        }
        self.port = Int(port)
    }

    /// SIGINT, then the exit status.
    @discardableResult
    func stop() -> Int32 { sload_stop(pid, 10) }

    /// The server's stderr so far.
    var stderrText: String {
        guard let f = fopen(stderrPath, "r") else { return "" }
        defer { fclose(f) }
        var out = ""
        var buf = [CChar](repeating: 0, count: 4096)
        while fgets(&buf, Int32(buf.count), f) != nil {
            out += buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
        return out
    }

    /// seda-gnutella's machine-readable status lines
    /// (`gnutella-status: t_s=1.00 key=value ...`), in order.
    var statusLines: [[String: Double]] {
        stderrText.split(separator: "\n").compactMap { line -> [String: Double]? in
            guard line.hasPrefix("gnutella-status:") else { return nil }
            var d: [String: Double] = [:]
            for field in line.split(separator: " ").dropFirst() {
                let kv = field.split(separator: "=", maxSplits: 1)
                if kv.count == 2, let v = Double(kv[1]) { d[String(kv[0])] = v }
            }
            return d
        }
    }

    deinit { unlink(stderrPath) }
}

/// Where the servers are: next to this executable (seda-baseline), and in
/// the main package's build directory (seda-gnutella).
enum GnutellaBinaries {
    static var executableDirectory: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return "." }
        let path = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    }

    static var baseline: String { executableDirectory + "/seda-baseline" }

    /// `<repo>/.build/<config>/seda-gnutella` for `<repo>/Benchmarks/.build/.../<config>/seda-bench`.
    static var sedaGnutella: String {
        let parts = executableDirectory.split(separator: "/", omittingEmptySubsequences: false)
        guard
            let b = parts.indices.first(where: {
                $0 + 1 < parts.count && parts[$0] == "Benchmarks" && parts[$0 + 1] == ".build"
            })
        else { return "seda-gnutella" }
        let config = parts.last.map(String.init) ?? "release"
        return parts[..<b].joined(separator: "/") + "/.build/" + config + "/seda-gnutella"
    }
}

/// A rounded whole number, as text.
func whole(_ x: Double) -> String { x.isFinite ? String(Int(x.rounded())) : "-" }
