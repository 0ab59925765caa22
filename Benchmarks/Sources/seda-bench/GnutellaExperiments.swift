import ArgumentParser
import Glibc

func megabytes(_ kb: Double?) -> String { kb.map { Stats.fixed($0 / 1024, 1) } ?? "-" }

/// The status line of seda-gnutella nearest to second `t` of the run.
func status(_ lines: [[String: Double]], at t: Double) -> [String: Double]? {
    lines.min { abs(($0["t_s"] ?? 0) - t) < abs(($1["t_s"] ?? 0) - t) }
}

struct GnutellaThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Descriptors routed per second and forwarding latency, seda-gnutella beside the bare epoll router.",
        discussion: """
            For each connection count and offered rate, the anchor (seda-baseline gnutella-epoll: \
            one thread, no stages) and seda-gnutella get the same open-loop stream (the seed's mix). \
            'routed/s' counts descriptors offered to the router that were delivered at least once \
            (their copies: 'delivered/s'; pings and queries are flooded to every other \
            connection). Latency runs from offer to delivery of each copy. The seed reported a \
            capability above 20,000 packets/s on a 4-way 500 MHz machine.
            """)

    @Option(help: "Connection counts, comma separated.")
    var connectionCounts: String = "100,1000"

    @Option(help: "Offered rates (descriptors/s), comma separated.")
    var rates: String = "500,1000,2000"

    @Option(help: "Generator threads.")
    var threads: Int = 2

    @Option(help: "Seconds measured per run.")
    var duration: Double = 5

    @Option(help: "Routers to run: seda, anchor or both (comma separated).")
    var servers: String = "anchor,seda"

    @OptionGroup var options: GnutellaServerOptions

    func run() throws {
        let counts = connectionCounts.split(separator: ",").compactMap { Int($0) }
        let rateList = rates.split(separator: ",").compactMap { Double($0) }
        let kinds = servers.split(separator: ",").compactMap { GnutellaServerKind(rawValue: String($0)) }
        guard !counts.isEmpty, !rateList.isEmpty, !kinds.isEmpty, counts.allSatisfy({ $0 >= 2 }) else {
            throw ValidationError("--connection-counts (each >= 2), --rates and --servers need values")
        }
        print(
            "seda-bench gnutella throughput: \(duration) s per run, the seed's mix, \(threads) generator threads, "
                + "seda-gnutella on \(options.sedaCpuThreads.map { "\($0)" } ?? "one per CPU") shared threads")
        var t = Table(headers: [
            "conns", "offered/s", "router", "routed/s", "delivered/s", "p50 µs", "p99 µs",
            "delivered vs anchor",
        ])
        for n in counts {
            for rate in rateList {
                var anchorRate: Double?
                for kind in kinds {
                    let load = GnutellaLoad(connections: n, threads: threads, rate: rate, warmup: 1, duration: duration)
                    let (o, _) = try options.measure(kind, load: load)
                    let routed =
                        zip(o.offered, o.delivered).reduce(0.0) { acc, p in
                            acc + Double(min(p.0, p.1))
                        } / o.windowSeconds
                    if kind == .anchor { anchorRate = o.deliveredPerSecond }
                    let ratio = anchorRate.map { Stats.fixed(o.deliveredPerSecond / $0, 2) } ?? "-"
                    t.add([
                        "\(n)", whole(o.offeredPerSecond), kind.rawValue, whole(routed),
                        whole(o.deliveredPerSecond), whole(o.allP50Micros),
                        whole(o.allP99Micros), kind == .anchor ? "1.00" : ratio,
                    ])
                }
            }
        }
        print(t.render())
    }
}

struct GnutellaClogged: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clogged",
        abstract: "Experiment 1: peers that stop reading, with and without a per-connection outgoing limit.",
        discussion: """
            The seed's server "would crash after a few hours": 115 packets/s saturate a 28.8 modem \
            link, and the router kept queueing for it. Here --clogged of the --connections peers \
            never read; the others offer queries of --query-bytes. Without an outgoing limit the \
            bytes for the clogged peers pile up in the router (RSS grows); with --limit they are \
            closed when their queue passes it, and RSS stays flat.
            """)

    @Option(help: "The router: seda or anchor.")
    var server: GnutellaServerKind = .seda

    @Option(help: "Peers that never read.")
    var clogged: Int = 4

    @Option(help: "The outgoing limit per connection, bytes (the socket layer's hard limit).")
    var limit: Int = 1 << 20

    @Option(help: "Peer connections.")
    var connections: Int = 20

    @Option(help: "Queries offered per second.")
    var rate: Double = 1000

    @Option(help: "Bytes of search text per query.")
    var queryBytes: Int = 2000

    @Option(help: "Seconds measured.")
    var duration: Double = 30

    @OptionGroup var options: GnutellaServerOptions

    func run() throws {
        guard clogged >= 1, connections > clogged + 1, limit > 0 else {
            throw ValidationError("--clogged >= 1, --connections > --clogged + 1, --limit > 0")
        }
        var load = GnutellaLoad(
            connections: connections, rate: rate, mix: [0, 0, 0, 1, 0], clogged: clogged,
            queryBytes: queryBytes, warmup: 0, duration: duration)
        load.drain = 1
        print(
            "seda-bench gnutella clogged: \(server.rawValue), \(connections) peers of which \(clogged) never read, "
                + "\(Int(rate)) queries/s of \(queryBytes) B, \(Int(duration)) s")
        let (free, _) = try options.measure(
            server, sedaFlags: ["--outgoing-limit", "none"],
            anchorFlags: ["--outgoing-limit", "0"], load: load)
        let (limited, _) = try options.measure(
            server, sedaFlags: ["--outgoing-limit", "\(limit)"],
            anchorFlags: ["--outgoing-limit", "\(limit)"], load: load)
        var t = Table(headers: ["t s", "RSS MB, no limit", "RSS MB, limit \(limit / 1024) KB"])
        for i in 0..<max(free.timeline.count, limited.timeline.count) {
            let a = i < free.timeline.count ? free.timeline[i] : nil
            let b = i < limited.timeline.count ? limited.timeline[i] : nil
            t.add([
                whole(a?.t ?? b?.t ?? 0), megabytes(a.map { Double($0.rssKB) }),
                megabytes(b.map { Double($0.rssKB) }),
            ])
        }
        print(t.render())
        var s = Table(headers: [
            "outgoing limit", "clogged peers closed", "RSS first MB", "RSS last MB", "queries delivered",
        ])
        s.add([
            "none", "\(free.cloggedClosed) of \(clogged)", megabytes(Double(free.rssFirstKB)),
            megabytes(Double(free.rssLastKB)), "\(free.delivered[3])",
        ])
        s.add([
            "\(limit) B", "\(limited.cloggedClosed) of \(clogged)", megabytes(Double(limited.rssFirstKB)),
            megabytes(Double(limited.rssLastKB)), "\(limited.delivered[3])",
        ])
        print(s.render())
    }
}

struct GnutellaThreshold: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threshold",
        abstract: "Experiment 2: a threshold on the router's queue, and the route cleanup timers it drops.",
        discussion: """
            The seed thresholded the router's incoming queue at 1000 entries and "heap size \
            continues to grow": the timer event that cleaned the list of recent packets was dropped \
            with everything else. Here queries cost --logger-delay-ms in the logger, the router is \
            paused while the logger is clogged (backpressure) and refuses events at --threshold. \
            With --cleanup ordinary the route cleanup ticks pass through that threshold and are \
            dropped: the route tables grow without bound. With --cleanup control (Seda's control \
            events) they get through and the tables stay at rate x lifetime.
            """)

    @Option(help: "The router queue's threshold.")
    var threshold: Int = 1000

    @Option(help: "Milliseconds per query in the logger.")
    var loggerDelayMs: Int = 20

    @Option(help: "Route lifetime, seconds (tables rotate every half).")
    var routeLifetime: Int = 4

    @Option(help: "The logger's queue capacity: once full, the router is paused and its own queue fills.")
    var loggerQueue: Int = 256

    @Option(help: "Descriptors offered per second.")
    var rate: Double = 1000

    @Option(help: "Peer connections.")
    var connections: Int = 20

    @Option(help: "Seconds measured.")
    var duration: Double = 30

    @OptionGroup var options: GnutellaServerOptions

    func run() throws {
        let common = [
            "--logger-delay-ms", "\(loggerDelayMs)", "--logger-queue", "\(loggerQueue)",
            "--router-threshold", "\(threshold)", "--router-pauses",
            "--route-lifetime", "\(routeLifetime)", "--table-capacity", "100000000",
        ]
        let load = GnutellaLoad(connections: connections, rate: rate, warmup: 0, duration: duration)
        print(
            "seda-bench gnutella threshold: \(Int(rate)) descriptors/s, queries \(loggerDelayMs) ms in the logger, "
                + "router threshold \(threshold), routes live \(routeLifetime) s")
        let (_, ordinary) = try options.measure(.seda, sedaFlags: common + ["--cleanup", "ordinary"], load: load)
        let (_, control) = try options.measure(.seda, sedaFlags: common + ["--cleanup", "control"], load: load)
        let a = ordinary.statusLines, b = control.statusLines
        var t = Table(headers: [
            "t s", "routes, ordinary ticks", "RSS MB", "ticks dropped", "routes, control ticks",
            "RSS MB", "router refused",
        ])
        for second in stride(from: 1.0, through: duration, by: 1) {
            let x = status(a, at: second), y = status(b, at: second)
            func v(_ d: [String: Double]?, _ k: String) -> String { d?[k].map { whole($0) } ?? "-" }
            t.add([
                whole(second), v(x, "routes"), megabytes(x?["rss_kb"]), v(x, "cleanup_ticks_dropped"),
                v(y, "routes"), megabytes(y?["rss_kb"]), v(y, "router_refused"),
            ])
        }
        print(t.render())
    }
}

struct GnutellaFilter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filter",
        abstract: "Experiment 3: application-specific filtering: queries go first under overload.",
        discussion: """
            Queries cost --logger-delay-ms in the logger: at the seed's mix and 1000/s that is 3 \
            threads' worth for one. Three policies, same load: a threshold on the router's queue \
            (every type is refused alike once the logger's backpressure fills it), the seed's \
            "threshold only the number of query packets processed" (a threshold on the logger's \
            queue: only queries are shed, everything else is routed normally), and a query filter \
            on the router's queue (an admission predicate: queries refused above the threshold, \
            other types admitted). The table shows the share of each type delivered.
            """)

    @Option(help: "Threshold of each policy.")
    var threshold: Int = 100

    @Option(help: "The logger's queue capacity (when full, the router is paused under the router policies).")
    var loggerQueue: Int = 256

    @Option(help: "Milliseconds per query in the logger.")
    var loggerDelayMs: Int = 20

    @Option(help: "Descriptors offered per second.")
    var rate: Double = 1000

    @Option(help: "Peer connections.")
    var connections: Int = 20

    @Option(help: "Seconds measured.")
    var duration: Double = 20

    @OptionGroup var options: GnutellaServerOptions

    func run() throws {
        let delay = ["--logger-delay-ms", "\(loggerDelayMs)", "--logger-queue", "\(loggerQueue)"]
        let policies: [(String, [String])] = [
            ("router threshold", delay + ["--router-threshold", "\(threshold)", "--router-pauses"]),
            ("logger threshold (queries)", delay + ["--logger-threshold", "\(threshold)"]),
            ("router query filter", delay + ["--query-filter", "\(threshold)", "--router-pauses"]),
        ]
        let load = GnutellaLoad(connections: connections, rate: rate, warmup: 2, duration: duration)
        print(
            "seda-bench gnutella filter: \(Int(rate)) descriptors/s, queries \(loggerDelayMs) ms in the logger, threshold \(threshold)"
        )
        var outcomes: [GnutellaOutcome] = []
        for (_, flags) in policies { outcomes.append(try options.measure(.seda, sedaFlags: flags, load: load).0) }
        var t = Table(headers: ["type"] + policies.map { "\($0.0): delivered %" } + policies.map { "\($0.0): p99 ms" })
        for (i, name) in GnutellaLoad.typeNames.enumerated() {
            let fan = UInt64(i == 0 || i == 3 ? connections - 1 : 1)
            let shares = outcomes.map { o -> String in
                let expected = o.offered[i] * fan
                return expected == 0 ? "-" : Stats.fixed(100 * Double(o.delivered[i]) / Double(expected), 1)
            }
            t.add([name] + shares + outcomes.map { Stats.fixed($0.p99Micros[i] / 1000, 1) })
        }
        print(t.render())
    }
}

struct GnutellaGovernor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "governor",
        abstract: "Experiment 4: the thread governor grows the logger's pool until its queue stays short.",
        discussion: """
            Queries sleep --logger-delay-ms in the logger; at --rate and the seed's 15 % queries \
            that is λ·p·L threads of work (1000 × 0.15 × 20 ms = 3). The governor samples every \
            --interval-ms and adds a thread when the logger's queue reaches --threshold (the seed \
            added 2 to 1). At --low-rate no thread is added (the seed: response time "higher for \
            200 packets/sec, since no threads added"). Per second: the logger's threads and queue \
            (seda-gnutella's status line) and the p99 forwarding latency of all descriptors.
            """)

    @Option(help: "Descriptors offered per second.")
    var rate: Double = 1000

    @Option(help: "The second, lower rate.")
    var lowRate: Double = 200

    @Option(help: "Milliseconds per query in the logger.")
    var loggerDelayMs: Int = 20

    @Option(help: "Logger queue length that adds a thread.")
    var threshold: Int = 100

    @Option(help: "Governor sampling interval, milliseconds (Sandstorm: 2000).")
    var intervalMs: Int = 2000

    @Option(help: "Most logger threads.")
    var maxThreads: Int = 8

    @Option(help: "Peer connections.")
    var connections: Int = 20

    @Option(help: "Seconds measured.")
    var duration: Double = 40

    @OptionGroup var options: GnutellaServerOptions

    func run() throws {
        let flags = [
            "--logger-delay-ms", "\(loggerDelayMs)", "--governor", "--governor-threshold", "\(threshold)",
            "--governor-interval-ms", "\(intervalMs)", "--logger-max-threads", "\(maxThreads)",
            "--logger-queue", "65536",
        ]
        let work = rate * 0.15 * Double(loggerDelayMs) / 1000
        print(
            "seda-bench gnutella governor: \(Int(rate)) and \(Int(lowRate)) descriptors/s, queries \(loggerDelayMs) ms "
                + "(λ·p·L = \(Stats.fixed(work, 1)) threads at \(Int(rate))/s), threshold \(threshold), every \(intervalMs) ms"
        )
        var runs: [(GnutellaOutcome, [[String: Double]])] = []
        for r in [rate, lowRate] {
            let load = GnutellaLoad(connections: connections, rate: r, warmup: 0, duration: duration)
            let (o, server) = try options.measure(.seda, sedaFlags: flags, load: load)
            runs.append((o, server.statusLines))
        }
        var t = Table(headers: [
            "t s", "threads @\(Int(rate))", "logger queue", "p99 ms",
            "threads @\(Int(lowRate))", "logger queue", "p99 ms",
        ])
        for second in stride(from: 1.0, through: duration, by: 1) {
            var row = [whole(second)]
            for (o, lines) in runs {
                let s = status(lines, at: second)
                let p99 = o.timeline.first { abs($0.t - second) < 0.5 }?.p99Micros
                row += [
                    s?["logger_threads"].map { whole($0) } ?? "-",
                    s?["logger_queue"].map { whole($0) } ?? "-",
                    p99.map { Stats.fixed($0 / 1000, 1) } ?? "-",
                ]
            }
            t.add(row)
        }
        print(t.render())
    }
}
