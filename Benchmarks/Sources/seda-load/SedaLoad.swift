import ArgumentParser
import CSedaLoad

#if canImport(Glibc)
    import Glibc
#endif

/// `seda-load`: the seed's HTTP benchmark client. The engine is C (epoll,
/// `sload_http_run`); this front end sweeps client counts or rates, prints the
/// seed's table, appends CSV rows and draws gnuplot figures.
@main
struct SedaLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seda-load",
        abstract: "The seed's HTTP benchmark client: completions/s, connect and response times, fairness.",
        discussion: """
            Closed loop (default), the seed's workload: N clients each ask for the page, sleep \
            --think-ms after every response and open a new connection every \
            --requests-per-connection requests. Open loop (--rate): a fixed request rate over a \
            pool of --connections connections.

            Response time runs from when a request was due (its think time ended, or its slot in \
            the open-loop schedule came), so a stalled server cannot hide behind a waiting client \
            (no coordinated omission). Requests still unanswered after the drain count in the \
            percentiles at their age then (a lower bound) and in the 'unanswered' column.
            """,
        subcommands: [Run.self, Plot.self],
        defaultSubcommand: Run.self
    )
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a measurement (the default).")

    @Option(help: "Server port on 127.0.0.1.")
    var port: Int

    @Option(help: "Closed loop: client counts to sweep, comma separated (e.g. 1,16,64,256,1024).")
    var clients: String = "1024"

    @Option(help: "Open loop: request rates (requests/s) to sweep, comma separated.")
    var rate: String?

    @Option(help: "Open loop: connections in the pool.")
    var connections: Int = 256

    @Option(name: .customLong("think-ms"), help: "Closed loop: sleep after each response (ms).")
    var thinkMs: Double = 20

    @Option(
        name: .customLong("requests-per-connection"),
        help: "A new connection after this many requests (0: never). Default 100 closed loop, 0 open loop.")
    var requestsPerConnection: Int?

    @Option(help: "Path requested.")
    var path: String = "/index.html"

    @Option(help: "Seconds before the measured window.")
    var warmup: Double = 1

    @Option(help: "Seconds measured, per run.")
    var duration: Double = 10

    @Option(help: "Seconds given to requests in flight after the window.")
    var drain: Double = 2

    @Option(help: "Client threads (epoll loops).")
    var threads: Int = 1

    @Option(name: .customLong("expect-bytes"), help: "Body size every 2xx must have (a mismatch is an error).")
    var expectBytes: Int?

    @Option(help: "Name of the server measured (the CSV's and the plot's label).")
    var label: String = "server"

    @Option(help: "Append one row per run to this CSV file (header written when new).")
    var csv: String?

    @Option(help: "Write gnuplot figures (SVG) with this path prefix.")
    var plot: String?

    @Flag(help: "Print the response-time histogram of each run.")
    var histogram = false

    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    @Flag(
        name: .customLong("require-clean"),
        help: "Exit 1 unless every run got 2xx responses with no error, failed connect or unanswered request.")
    var requireClean = false

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1...65535") }
        guard duration > 0, warmup >= 0, drain >= 0, thinkMs >= 0 else {
            throw ValidationError("--duration must be > 0; --warmup, --drain and --think-ms >= 0")
        }
        guard threads >= 1, connections >= 1 else { throw ValidationError("--threads and --connections must be >= 1") }
        guard path.hasPrefix("/") else { throw ValidationError("--path must start with /") }
        _ = try sweep()
    }

    /// The runs: (clients, rate) pairs.
    func sweep() throws -> [(Int, Double)] {
        if let rate {
            let rates = rate.split(separator: ",").map { Double(trim($0)) }
            guard !rates.isEmpty, rates.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw ValidationError("--rate takes positive numbers separated by commas")
            }
            return rates.map { (connections, $0!) }
        }
        let counts = clients.split(separator: ",").map { Int(trim($0)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--clients takes positive integers separated by commas")
        }
        return counts.map { ($0!, 0) }
    }

    func run() throws {
        var rows: [Row] = []
        var histograms: [(String, [Bin])] = []
        for (n, r) in try sweep() {
            var cfg = sload_http_config_t()
            sload_http_defaults(&cfg, UInt16(port), UInt32(n), duration)
            cfg.think_ms = thinkMs
            cfg.rate = r
            cfg.requests_per_connection = UInt32(requestsPerConnection ?? (r > 0 ? 0 : 100))
            cfg.warmup_s = warmup
            cfg.drain_s = drain
            cfg.threads = UInt32(threads)
            cfg.expect_body = Int64(expectBytes ?? -1)
            cfg.progress = quiet ? 0 : 1
            if !quiet {
                eprint(
                    "seda-load: \(label): "
                        + (r > 0
                            ? "\(fmt(r, 0)) requests/s over \(n) connections"
                            : "\(n) clients") + " for \(fmt(duration, 1)) s")
            }
            var result = sload_http_result_t()
            let rc = path.withCString { p -> Int32 in
                cfg.path = p
                return sload_http_run(&cfg, &result)
            }
            guard rc == 0 else {
                throw ValidationError("seda-load: the run could not start: \(String(cString: strerror(-rc)))")
            }
            defer { sload_http_result_free(&result) }
            let row = Row(label: label, config: cfg, result: result)
            rows.append(row)
            if let csv { try appendCSV(row, to: csv) }
            let name = r > 0 ? "\(label) \(fmt(r, 0))/s" : "\(label) \(n) clients"
            let bins = Bin.decades(result.response_ok, result.response_other, result.unanswered)
            histograms.append((name, bins))
            if histogram {
                print("response times, \(name):")
                print(Bin.render(bins))
            }
        }
        print(Row.table(rows))
        if let plot {
            try Plotter.figures(rows: rows, histograms: histograms, prefix: plot)
        }
        if requireClean {
            let bad = rows.filter { $0.errors + $0.connectErrors + $0.unanswered > 0 || $0.okPerS == 0 }
            if !bad.isEmpty {
                eprint("seda-load: \(bad.count) run(s) had errors, failed connects, unanswered requests or no 2xx")
                throw ExitCode(1)
            }
        }
    }
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Draw the seed's figures from CSV rows (from several servers): completions/s and response times against clients or rate."
    )

    @Option(help: "CSV written by seda-load --csv.")
    var csv: String

    @Option(help: "Path prefix of the SVG figures.")
    var out: String

    func run() throws {
        let rows = try Row.read(csv: csv)
        guard !rows.isEmpty else { throw ValidationError("\(csv) has no rows") }
        print(Row.table(rows))
        try Plotter.figures(rows: rows, histograms: [], prefix: out)
    }
}

func eprint(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// `x` with `digits` decimals, without Foundation.
func fmt(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return String(x) }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (abs(x) * scale).rounded()
    let whole = Int(r / scale)
    var s = (x < 0 && r > 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let frac = Int(r - Double(whole) * scale)
        let f = String(frac)
        s += "." + String(repeating: "0", count: digits - f.count) + f
    }
    return s
}

func trim(_ s: Substring) -> String {
    String(s.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
}
