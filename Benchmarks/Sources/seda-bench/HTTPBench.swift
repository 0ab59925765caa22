import ArgumentParser
import Glibc

/// `seda-bench http`: seda-httpd beside the seed's baselines and the servers
/// users would pick instead, in one run (issue 10). Four parts, each bounded
/// in time, each server a child process on 127.0.0.1, the clients (seda-load,
/// wrk) child processes too:
///
/// - `sweep`: the seed's figure and table (HTTPSweep.swift);
/// - `overload`: `/bottleneck` at multiples of its capacity (HTTPOverload.swift);
/// - `anchors`: wrk against nginx, h2o, SwiftNIO and the bare responder (HTTPAnchors.swift);
/// - `memory`: resident memory per idle keep-alive connection (HTTPMemory.swift).
struct HTTPBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "seda-httpd beside the seed's baselines, nginx, h2o and SwiftNIO (sweep, overload, anchors, memory).",
        discussion: """
            Parts (--parts, default all): sweep (seda-load's closed loop, the seed's workload, from 1 to \
            1,024 clients: completions/s vs clients, and the seed's table at the largest count with the \
            SOSP 2001 reference line), overload (/bottleneck: capacity, then open loop at multiples of it, \
            with and without seda-httpd's response-time controller; PASS/FAIL against issue 10's targets, \
            reported, not asserted), anchors (wrk on the 8 KB page, keep-alive, against nginx, h2o, \
            seda-nio-httpd and the bare epoll responder, plus the seed workload against nginx), memory (RSS \
            per idle keep-alive connection). --vs-anchors is --parts anchors. --quick shortens every part \
            (about a minute). Servers: \(HTTPServers.names.joined(separator: ", ")); a server that is not \
            built or not installed is skipped with a message. CSV and gnuplot SVGs go to --out.
            """
    )

    @Option(parsing: .upToNextOption, help: "Parts to run: sweep, overload, anchors, memory.")
    var parts: [String] = ["sweep", "overload", "anchors", "memory"]
    @Flag(name: .customLong("vs-anchors"), help: "Only the anchors part (wrk beside nginx, h2o, SwiftNIO).")
    var vsAnchors = false
    @Flag(help: "Short runs and fewer points: about a minute in all.") var quick = false
    @Option(help: "Directory for the CSV files and figures.") var out: String = "http-bench"

    // Servers
    @Option(help: "seda-httpd executable (default: the root package's .build/release, else .build/debug).")
    var httpd: String?
    @Option(help: "Directory of nginx-anchor and h2o-anchor (default: shared/bench beside the repository).")
    var anchors: String?
    @Option(name: .customLong("seda-threads"), help: "seda-httpd's --threads where the name has no count.")
    var sedaThreads: Int = 2
    @Option(help: "seda-httpd's --poller.") var poller: String = "epoll"
    @Option(help: "seda-httpd's --pipeline (fused or staged; default: its own).") var pipeline: String?
    @Option(name: .customLong("httpd-arg"), help: "An extra argument for seda-httpd (repeatable).")
    var httpdArguments: [String] = []
    @Option(help: "seda-httpd's --max-connections.") var maxConnections: Int = 19000

    // Clients
    @Option(name: .customLong("load-threads"), help: "seda-load's client threads.") var loadThreads: Int = 1
    @Option(help: "Seconds of warm-up before each seda-load window.") var warmup: Double?
    @Option(help: "Seconds for requests in flight after each seda-load window.") var drain: Double?
    @Flag(help: "Show seda-load's progress and tables.") var verbose = false
    @Flag(
        help: "Exit 1 when a server was skipped or failed to start, a run failed, or a request failed (smoke tests).")
    var strict = false

    // sweep
    @Option(name: .customLong("sweep-servers"), parsing: .upToNextOption, help: "Servers of the sweep.")
    var sweepServers: [String] = ["http-pool", "http-thread", "seda-httpd"]
    @Option(name: .customLong("clients"), parsing: .upToNextOption, help: "Client counts of the sweep.")
    var sweepClients: [Int] = []
    @Option(name: .customLong("sweep-duration"), help: "Seconds measured per sweep point.")
    var sweepDuration: Double?

    // overload
    @Option(name: .customLong("overload-servers"), parsing: .upToNextOption, help: "Servers of the overload part.")
    var overloadServers: [String] = ["seda-httpd", "seda-httpd+target", "seda-nio-httpd"]
    @Option(name: .customLong("bottleneck-ms"), help: "CPU ms per /bottleneck request.") var bottleneckMs: Double = 1
    @Option(name: .customLong("bottleneck-threads"), help: "Threads of the /bottleneck stage (NIO: its pool).")
    var bottleneckThreads: Int = 2
    @Option(name: .customLong("target-ms"), help: "seda-httpd+target's --response-time-target-ms.")
    var targetMs: Int = 50
    @Option(name: .customLong("factors"), parsing: .upToNextOption, help: "Offered load as multiples of capacity.")
    var factors: [Double] = []
    @Option(name: .customLong("overload-duration"), help: "Seconds measured per overload step and for capacity.")
    var overloadDuration: Double?
    @Option(name: .customLong("capacity-clients"), help: "Closed-loop clients (no think time) measuring capacity.")
    var capacityClients: Int = 32
    @Option(name: .customLong("overload-connections"), help: "Open-loop connection pool.")
    var overloadConnections: Int = 1000
    @Option(name: .customLong("reject-ms"), help: "Target: 503s answered within this (p99, ms).")
    var rejectMs: Double = 5

    // anchors
    @Option(name: .customLong("anchor-servers"), parsing: .upToNextOption, help: "Servers measured with wrk.")
    var anchorServers: [String] = [
        "http-epoll", "nginx-1w", "seda-httpd-1t", "nginx-2w", "seda-httpd-2t", "h2o-1t", "seda-nio-httpd",
    ]
    @Option(name: .customLong("wrk-connections"), parsing: .upToNextOption, help: "wrk's connection counts.")
    var wrkConnections: [Int] = []
    @Option(name: .customLong("wrk-seconds"), help: "wrk's duration per row (whole seconds).") var wrkSeconds: Int?
    @Option(name: .customLong("wrk-threads"), help: "wrk's threads.") var wrkThreads: Int = 1
    @Option(name: .customLong("wrk-warmup"), help: "Seconds of wrk, not measured, before each server's rows (0: none).")
    var wrkWarmup: Int?
    @Option(name: .customLong("seed-servers"), parsing: .upToNextOption, help: "Servers of the seed workload.")
    var seedServers: [String] = ["seda-httpd-1t", "nginx-1w", "seda-httpd-2t", "nginx-2w"]
    @Option(
        name: .customLong("seed-clients"),
        help: "Clients of the seed workload (20 ms think, 100 per connection; 0: skip it).")
    var seedClients: Int?
    @Option(name: .customLong("seed-duration"), help: "Seconds measured for the seed workload.")
    var seedDuration: Double?

    // memory
    @Option(name: .customLong("memory-servers"), parsing: .upToNextOption, help: "Servers of the memory part.")
    var memoryServers: [String] = ["seda-httpd-1t", "nginx-1w", "seda-nio-httpd"]
    @Option(name: .customLong("idle-connections"), help: "Idle keep-alive connections opened.")
    var idleConnections: Int?

    func validate() throws {
        for p in parts where !["sweep", "overload", "anchors", "memory"].contains(p) {
            throw ValidationError("unknown part '\(p)' (sweep, overload, anchors, memory)")
        }
        for s in sweepServers + overloadServers + anchorServers + seedServers + memoryServers
        where !HTTPServers.names.contains(s) {
            throw ValidationError("unknown server '\(s)' (\(HTTPServers.names.joined(separator: ", ")))")
        }
        guard sweepClients.allSatisfy({ $0 >= 1 }), factors.allSatisfy({ $0 > 0 }),
            wrkConnections.allSatisfy({ $0 >= 1 })
        else { throw ValidationError("--clients, --factors and --wrk-connections must be positive") }
        guard sedaThreads >= 1, loadThreads >= 1, wrkThreads >= 1, bottleneckThreads >= 1, targetMs >= 1,
            capacityClients >= 1, overloadConnections >= 1, maxConnections >= 1, bottleneckMs >= 0
        else { throw ValidationError("thread, client and connection counts must be at least 1") }
        for d in [warmup, drain, sweepDuration, overloadDuration, seedDuration].compactMap({ $0 }) where d < 0 {
            throw ValidationError("durations must be >= 0")
        }
        if let pipeline, !["fused", "staged"].contains(pipeline) {
            throw ValidationError("--pipeline: fused or staged")
        }
    }

    /// The settings every part reads, with --quick's defaults applied.
    struct Context {
        let servers: HTTPServers
        let load: SedaLoadClient
        let out: String
        let quick: Bool
        let problems = Problems()

        /// Starts the server called `name`, or prints why it is skipped and returns nil.
        func start(_ name: String) -> HTTPServerProcess? {
            switch servers.start(name) {
            case .success(let server): return server
            case .failure(let e):
                print("\(name): skipped: \(e)")
                problems.note("\(name) skipped")
                return nil
            }
        }
    }

    func run() throws {
        raiseDescriptorLimit()
        signal(SIGPIPE, SIG_IGN)
        guard mkdir(out, 0o755) == 0 || errno == EEXIST else {
            throw ValidationError("cannot create \(out): \(String(cString: strerror(errno)))")
        }
        let servers = HTTPServers(
            httpd: httpd ?? HTTPServers.defaultHTTPD(), anchors: anchors ?? HTTPServers.defaultAnchors(),
            sedaThreads: sedaThreads, poller: poller, pipeline: pipeline, extraHTTPDArguments: httpdArguments,
            bottleneckMs: bottleneckMs, bottleneckThreads: bottleneckThreads, targetMs: targetMs,
            maxConnections: maxConnections)
        let context = Context(
            servers: servers,
            load: SedaLoadClient(
                threads: loadThreads, warmup: warmup ?? (quick ? 0.2 : 1), drain: drain ?? (quick ? 0.5 : 2),
                verbose: verbose),
            out: out, quick: quick)
        let selected = vsAnchors ? ["anchors"] : parts
        ioProgress("seda-bench http: \(selected.joined(separator: ", ")); seda-httpd: \(servers.httpd); out: \(out)/\n")
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        let start = Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        if selected.contains("sweep") {
            try HTTPSweep(
                servers: sweepServers,
                clients: sweepClients.isEmpty ? (quick ? [1, 16, 64] : [1, 4, 16, 64, 256, 1024]) : sweepClients,
                duration: sweepDuration ?? (quick ? 1 : 5)
            ).run(context)
        }
        if selected.contains("overload") {
            try HTTPOverload(
                servers: overloadServers,
                factors: factors.isEmpty ? (quick ? [0.5, 2, 10] : [0.5, 2, 5, 10]) : factors,
                duration: overloadDuration ?? (quick ? 1 : 5), capacityClients: capacityClients,
                connections: overloadConnections, targetMs: Double(targetMs), rejectMs: rejectMs
            ).run(context)
        }
        if selected.contains("anchors") {
            try HTTPAnchors(
                servers: anchorServers,
                connections: wrkConnections.isEmpty ? (quick ? [100] : [100, 1000]) : wrkConnections,
                seconds: wrkSeconds ?? (quick ? 1 : 5), wrkThreads: wrkThreads,
                warmupSeconds: wrkWarmup ?? (quick ? 0 : 1),
                seedServers: seedServers,
                seedClients: seedClients ?? (quick ? 200 : 1000), seedDuration: seedDuration ?? (quick ? 1 : 10)
            ).run(context)
        }
        if selected.contains("memory") {
            try HTTPMemory(servers: memoryServers, connections: idleConnections ?? (quick ? 1000 : 10_000)).run(context)
        }
        clock_gettime(CLOCK_MONOTONIC, &t)
        let elapsed = Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 - start
        print("seda-bench http: done in \(Stats.fixed(elapsed, 0)) s; CSV and figures in \(out)/")
        if !context.problems.list.isEmpty {
            print("problems: " + context.problems.list.joined(separator: "; "))
            if strict { throw ExitCode(1) }
        }
    }
}

/// What went wrong during a run (servers skipped, runs or requests failed),
/// for --strict. Used from one thread.
final class Problems {
    private(set) var list: [String] = []
    func note(_ s: String) { list.append(s) }
}

/// A section heading in the report.
func heading(_ s: String) {
    print("\n## " + s + "\n")
}
