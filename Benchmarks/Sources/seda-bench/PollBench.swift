import ArgumentParser
import CSedaBench
import CSedaCore
import Glibc

/// `seda-bench poll`: the seed's "Performance of poll(2) and /dev/poll". One
/// active TCP connection and N idle ones; for every backend of `seda_poller`
/// the cost of one delivered event (write a byte on the active connection,
/// wait for the poller to report it, read it) as N grows. The shape to
/// expect: select and poll grow with N (each wait hands the kernel every
/// descriptor), epoll and io_uring stay flat (registered once, a wait costs
/// what is ready). select stops at FD_SETSIZE.
struct PollBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poll",
        abstract:
            "Cost per delivered event (µs) and events/s with 1 active and N idle connections, per poller backend.",
        discussion: """
            The idle connections' client ends live in a child process, so N idle connections cost \
            this process N descriptors (15,000 fit under a 20,000 limit). Each figure is the median \
            of --runs runs of at most --seconds or --events events each. The cost includes the \
            write and the read (the N=1 row is their floor); what grows beyond it is the poller.
            """
    )

    @Option(parsing: .upToNextOption, help: "Idle connection counts.")
    var idle: [UInt32] = [1, 10, 100, 1000, 2500, 5000, 10000, 15000]

    @Option(parsing: .upToNextOption, help: "Backends: select, poll, epoll, io_uring.")
    var backends: [String] = ["select", "poll", "epoll", "io_uring"]

    @Option(help: "Seconds per run at most.")
    var seconds: Double = 0.3

    @Option(help: "Events per run at most.")
    var events: UInt64 = 200_000

    @Option(help: "Runs per figure; the median is reported.")
    var runs: Int = 3

    @Option(help: "Write a PNG of µs per event vs idle connections here (gnuplot); empty: no plot.")
    var plot: String = "seda-bench-poll.png"

    func validate() throws {
        guard runs >= 1, seconds > 0, events >= 1, !idle.isEmpty, !backends.isEmpty else {
            throw ValidationError("--runs, --seconds, --events must be positive; --idle and --backends not empty")
        }
        for b in backends where seda_poller_backend_parse(b) <= 0 {
            throw ValidationError("unknown backend '\(b)': select, poll, epoll or io_uring")
        }
        let capacity = seda_bench_poll_capacity()
        if let n = idle.max(), n > capacity {
            throw ValidationError(
                "\(n) idle connections do not fit under this process's descriptor limit (at most \(capacity))")
        }
    }

    struct Cell {
        var nsPerEvent: Double
        var eventsPerSecond: Double
    }

    enum Outcome {
        case measured(Cell)
        case beyondFdSetSize
        case failed(Int32)
    }

    func run() throws {
        let kinds = backends.map { seda_poller_backend_parse($0) }
        let names = kinds.map { String(cString: seda_poller_backend_name($0)) }
        let ns = idle.sorted()
        let fdSetSize = Int(seda_bench_poll_fd_setsize())
        let maxNs = Int64(seconds * 1e9)

        progress("seda-bench poll: connecting \(ns.last!) idle connections...\n")
        var bench: OpaquePointer?
        let rc = seda_bench_poll_open(&bench, ns.last!)
        guard rc == 0, let bench else {
            throw ValidationError("setup failed: \(String(cString: seda_strerror(rc)))")
        }
        defer { seda_bench_poll_close(bench) }

        // results[backend][n]
        var results = [[Outcome]](repeating: [], count: kinds.count)
        for n in ns {
            for (b, kind) in kinds.enumerated() {
                progress("  N=\(n) \(names[b])...\n")
                var samples: [Cell] = []
                var outcome: Outcome?
                for _ in 0..<runs {
                    var r = seda_bench_poll_result_t()
                    let rc = seda_bench_poll_run(bench, kind, n, events, maxNs, &r)
                    if rc == -EMFILE && kind == Int32(SEDA_POLLER_SELECT.rawValue) {
                        outcome = .beyondFdSetSize
                        break
                    }
                    if rc != 0 {
                        outcome = .failed(rc)
                        break
                    }
                    samples.append(Cell(nsPerEvent: r.ns_per_event, eventsPerSecond: r.events_per_s))
                }
                results[b].append(
                    outcome
                        ?? .measured(
                            Cell(
                                nsPerEvent: Stats.median(samples.map(\.nsPerEvent)),
                                eventsPerSecond: Stats.median(samples.map(\.eventsPerSecond)))))
            }
        }

        print(
            "seda-bench poll: 1 active + N idle TCP connections on 127.0.0.1, median of \(runs) run(s) of ≤ \(Stats.fixed(seconds, 2)) s"
        )
        var headers = ["idle N"]
        headers += names.map { "\($0) µs/event" }
        headers += names.map { "\($0) events/s" }
        var table = Table(headers: headers)
        for (i, n) in ns.enumerated() {
            var row = ["\(n)"]
            row += results.map { cellText($0[i]) { Stats.fixed($0.nsPerEvent / 1000, 2) } }
            row += results.map { cellText($0[i]) { "\(Int($0.eventsPerSecond.rounded()))" } }
            table.add(row)
        }
        print(table.render())

        // Growth: each backend's cost at its largest N against its own N=smallest (the anchor).
        var growth = Table(headers: [
            "backend", "µs/event at N=\(ns.first!)", "at largest N", "largest N", "× vs N=\(ns.first!)",
        ])
        for (b, name) in names.enumerated() {
            guard case .measured(let first) = results[b][0] else { continue }
            var lastIndex = 0
            for i in ns.indices { if case .measured = results[b][i] { lastIndex = i } }
            guard case .measured(let last) = results[b][lastIndex] else { continue }
            growth.add([
                name, Stats.fixed(first.nsPerEvent / 1000, 2), Stats.fixed(last.nsPerEvent / 1000, 2),
                "\(ns[lastIndex])", Stats.fixed(last.nsPerEvent / first.nsPerEvent, 2) + "×",
            ])
        }
        print("\n" + growth.render())
        if kinds.contains(Int32(SEDA_POLLER_SELECT.rawValue)), ns.contains(where: { Int($0) + 16 >= fdSetSize }) {
            print(
                "\nselect: stops at FD_SETSIZE (\(fdSetSize)): a descriptor at or above it cannot be watched (the poller refuses it with EMFILE)."
            )
        }
        for (b, name) in names.enumerated() {
            for (i, o) in results[b].enumerated() {
                if case .failed(let rc) = o {
                    print("\(name) at N=\(ns[i]) failed: \(String(cString: seda_strerror(rc)))")
                }
            }
        }
        if !plot.isEmpty { writePlot(plot, ns: ns, names: names, results: results) }
    }

    func cellText(_ o: Outcome, _ f: (Cell) -> String) -> String {
        switch o {
        case .measured(let c): f(c)
        case .beyondFdSetSize: "— (FD_SETSIZE)"
        case .failed: "failed"
        }
    }

    func writePlot(_ path: String, ns: [UInt32], names: [String], results: [[Outcome]]) {
        guard system("command -v gnuplot >/dev/null 2>&1") == 0 else {
            print("\n(no plot: gnuplot is not installed; apt-get install -y gnuplot-nox)")
            return
        }
        let data = path + ".dat"
        var text = "# idle " + names.map { "\($0)_us_per_event" }.joined(separator: " ") + "\n"
        for (i, n) in ns.enumerated() {
            text += "\(n)"
            for r in results {
                if case .measured(let c) = r[i] { text += " \(c.nsPerEvent / 1000)" } else { text += " ?" }
            }
            text += "\n"
        }
        guard let f = fopen(data, "w") else {
            print("cannot write \(data)")
            return
        }
        fputs(text, f)
        fclose(f)
        let lines = names.enumerated().map { i, name in
            "'\(data)' using 1:\(i + 2) with linespoints title '\(name)'"
        }
        let script = """
            set terminal png size 900,600 noenhanced
            set output '\(path)'
            set title 'seda-bench poll: 1 active + N idle connections'
            set datafile missing '?'
            set logscale xy
            set xlabel 'idle connections N'
            set ylabel 'µs per delivered event'
            set key top left
            set grid
            plot \(lines.joined(separator: ", "))

            """
        guard let g = popen("gnuplot", "w") else {
            print("cannot run gnuplot")
            return
        }
        fputs(script, g)
        let rc = pclose(g)
        print(rc == 0 ? "\nplot: \(path) (data: \(data))" : "\ngnuplot failed (\(rc))")
    }
}

/// A progress line on stderr (the table goes to stdout).
private func progress(_ s: String) {
    var line = s
    line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}
