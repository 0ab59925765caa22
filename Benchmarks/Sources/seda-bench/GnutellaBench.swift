import ArgumentParser
import Glibc

/// `seda-bench gnutella`: the seed's Gnutella packet router experiments,
/// driven by the C load generator (`sload_gnu_run`) against seda-gnutella
/// and its anchor, the bare one-thread epoll router (`seda-baseline
/// gnutella-epoll`), each started as a process of its own so that its
/// memory (RSS) is measured alone.
struct GnutellaBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gnutella",
        abstract:
            "The seed's Gnutella router experiments: throughput, clogged peers, queue thresholds, filtering, the governor.",
        subcommands: [
            GnutellaRun.self, GnutellaThroughput.self, GnutellaClogged.self, GnutellaThreshold.self,
            GnutellaFilter.self, GnutellaGovernor.self,
        ]
    )
}

/// Which router a run drives.
enum GnutellaServerKind: String, ExpressibleByArgument, CaseIterable {
    case seda, anchor
}

struct GnutellaServerOptions: ParsableArguments {
    @Option(help: "The seda-gnutella executable (default: the main package's build of the same configuration).")
    var sedaGnutella: String?

    @Option(help: "The seda-baseline executable (default: next to seda-bench).")
    var baseline: String?

    @Flag(help: "The generator's line per second on stderr.")
    var progress = false

    @Option(
        help:
            "seda-gnutella's shared threads (its --cpu-threads; default: one per CPU). The generator runs on the same machine: with as many server threads as cores, every flood waits for both to be scheduled."
    )
    var sedaCpuThreads: Int?

    /// Starts a router: seda-gnutella with `sedaFlags`, or the anchor with `anchorFlags`.
    func start(_ kind: GnutellaServerKind, sedaFlags: [String] = [], anchorFlags: [String] = []) throws -> ServerProcess
    {
        switch kind {
        case .seda:
            try ServerProcess(
                name: "seda-gnutella",
                argv: [sedaGnutella ?? GnutellaBinaries.sedaGnutella, "--port", "0", "--status-interval", "1"]
                    + (sedaCpuThreads.map { ["--cpu-threads", "\($0)"] } ?? []) + sedaFlags)
        case .anchor:
            try ServerProcess(
                name: "gnutella-epoll",
                argv: [baseline ?? GnutellaBinaries.baseline, "gnutella-epoll", "--port", "0"] + anchorFlags)
        }
    }

    /// Starts a router, runs `load` against it (with its pid for RSS), stops it.
    func measure(
        _ kind: GnutellaServerKind, sedaFlags: [String] = [], anchorFlags: [String] = [],
        load: GnutellaLoad
    ) throws -> (GnutellaOutcome, ServerProcess) {
        let server = try start(kind, sedaFlags: sedaFlags, anchorFlags: anchorFlags)
        var l = load
        l.serverPID = server.pid
        l.progress = progress
        let outcome: GnutellaOutcome
        do {
            outcome = try l.run(port: server.port)
        } catch {
            server.stop()
            throw error
        }
        let status = server.stop()
        if status != 0 {
            throw BenchError("\(server.name) exited \(status); its stderr:\n\(server.stderrText)")
        }
        return (outcome, server)
    }
}

/// The generator's settings, shared by the subcommands.
struct GnutellaLoadOptions: ParsableArguments {
    @Option(help: "Peer connections.")
    var connections: Int = 20

    @Option(help: "Generator threads (epoll loops).")
    var threads: Int = 1

    @Option(help: "Descriptors offered per second, in total (open loop).")
    var rate: Double = 1000

    @Option(help: "Weights of ping,pong,push,query,queryhit (the seed's: 25,35,5,15,20; 15% queries).")
    var mix: String = "25,35,5,15,20"

    @Option(help: "Bursts: peak rate / mean rate (1: smooth).")
    var burst: Double = 1

    @Option(help: "Mean length of a burst, milliseconds.")
    var burstOnMs: Double = 100

    @Option(help: "Bytes of search text per query.")
    var queryBytes: Int = 12

    @Option(help: "Seconds before the measured window.")
    var warmup: Double = 1

    @Option(help: "Seconds measured.")
    var duration: Double = 10

    func load() throws -> GnutellaLoad {
        let weights = mix.split(separator: ",").compactMap { Double($0) }
        guard weights.count == 5, weights.allSatisfy({ $0 >= 0 }), weights.reduce(0, +) > 0 else {
            throw ValidationError("--mix wants five non-negative weights: ping,pong,push,query,queryhit")
        }
        guard connections >= 2, threads >= 1, rate > 0, duration > 0, warmup >= 0, burst >= 1 else {
            throw ValidationError("--connections >= 2, --threads >= 1, --rate > 0, --duration > 0, --burst >= 1")
        }
        return GnutellaLoad(
            connections: connections, threads: threads, rate: rate, mix: weights, burst: burst,
            burstOnMs: burstOnMs, queryBytes: queryBytes, warmup: warmup, duration: duration)
    }
}

/// Prints the per-type table of one run.
func printTypes(_ o: GnutellaOutcome, connections: Int) {
    var t = Table(headers: ["type", "offered", "delivered", "expected", "delivered %", "p50 µs", "p99 µs"])
    for (i, name) in GnutellaLoad.typeNames.enumerated() {
        // Pings and queries are flooded to every other connection; the rest are routed to one.
        let expected = o.offered[i] * UInt64(i == 0 || i == 3 ? connections - 1 : 1)
        t.add([
            name, "\(o.offered[i])", "\(o.delivered[i])", "\(expected)",
            expected == 0 ? "-" : Stats.fixed(100 * Double(o.delivered[i]) / Double(expected), 1),
            Stats.fixed(o.p50Micros[i], 1), Stats.fixed(o.p99Micros[i], 1),
        ])
    }
    print(t.render())
}

struct GnutellaRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "One load run against a router: a running one (--port), or one started here (--server).")

    @Option(help: "Drive the router already listening on 127.0.0.1:<port>.")
    var port: Int?

    @Option(help: "Start this router instead: seda or anchor.")
    var server: GnutellaServerKind = .seda

    @Option(help: "Replay this trace (see sload_gnutella.h) instead of the synthetic stream.")
    var trace: String?

    @Option(help: "Write the synthetic stream as a trace.")
    var record: String?

    @Option(help: "Peers that never read (the seed's clogged modem links).")
    var clogged: Int = 0

    @OptionGroup var load: GnutellaLoadOptions
    @OptionGroup var servers: GnutellaServerOptions

    func run() throws {
        var l = try load.load()
        l.trace = trace
        l.record = record
        l.clogged = clogged
        let o: GnutellaOutcome
        if let port {
            l.progress = servers.progress
            o = try l.run(port: port)
        } else {
            o = try servers.measure(server, load: l).0
        }
        print(
            "seda-bench gnutella run: \(load.connections) connections (\(o.connected) handshaken), "
                + "\(whole(o.offeredPerSecond)) offered/s, \(whole(o.deliveredPerSecond)) delivered/s")
        printTypes(o, connections: load.connections)
        if o.handshakeErrors + o.protocolErrors + o.connectErrors > 0 {
            throw BenchError(
                "errors: \(o.connectErrors) connect, \(o.handshakeErrors) handshake, \(o.protocolErrors) protocol")
        }
    }
}
