import ArgumentParser
import CSedaBench

/// `seda-bench timers`: the cost of a timer operation as the number pending
/// grows, Seda's timing wheel beside a binary heap under a mutex (the usual
/// hand-written timer queue), on a manual clock (no thread, no sleep).
struct TimerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timers",
        abstract: "Timer add+cancel and fire cost (ns/op) with 1K to 1M pending: wheel vs heap.",
        discussion: """
            Workload: fill to N timers at random deadlines over one hour, then --ops pairs of \
            (add at a random deadline, cancel a random pending timer), then fire: the clock \
            advances ~32 expiries per poll and each fired timer re-arms one. Median of --runs.
            """
    )

    @Option(help: "Operations measured per run.")
    var ops: UInt64 = 1_000_000

    @Option(help: "Runs per figure; the median is reported.")
    var runs: Int = 3

    @Option(parsing: .upToNextOption, help: "Pending counts to measure.")
    var pending: [UInt64] = [1_000, 10_000, 100_000, 1_000_000]

    func validate() throws {
        guard runs >= 1, ops >= 1000, !pending.isEmpty, pending.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--runs >= 1, --ops >= 1000, --pending values >= 1")
        }
    }

    func run() throws {
        print("seda-bench timers: \(ops) ops per run, median of \(runs) runs, ns per operation")
        var rows: [(UInt64, seda_bench_timer_result_t)] = []
        for n in pending {
            var samples: [seda_bench_timer_result_t] = []
            for _ in 0..<runs {
                var r = seda_bench_timer_result_t()
                let rc = seda_bench_timer_ops(n, ops, &r)
                guard rc == 0 else { throw ValidationError("timer benchmark failed for \(n) pending: error \(rc)") }
                samples.append(r)
            }
            func med(_ f: (seda_bench_timer_result_t) -> Double) -> Double { Stats.median(samples.map(f)) }
            rows.append(
                (
                    n,
                    seda_bench_timer_result_t(
                        fill_ns: med(\.fill_ns), add_cancel_ns: med(\.add_cancel_ns), fire_ns: med(\.fire_ns),
                        heap_add_cancel_ns: med(\.heap_add_cancel_ns), heap_fire_ns: med(\.heap_fire_ns))
                ))
        }
        let base = rows[0].1
        var table = Table(headers: [
            "pending", "wheel add+cancel", "wheel fire", "heap add+cancel", "heap fire",
            "wheel add+cancel vs \(rows[0].0)", "wheel fire vs \(rows[0].0)",
        ])
        for (n, r) in rows {
            table.add([
                "\(n)", Stats.fixed(r.add_cancel_ns, 1), Stats.fixed(r.fire_ns, 1),
                Stats.fixed(r.heap_add_cancel_ns, 1), Stats.fixed(r.heap_fire_ns, 1),
                Stats.fixed(r.add_cancel_ns / base.add_cancel_ns, 2) + "×",
                Stats.fixed(r.fire_ns / base.fire_ns, 2) + "×",
            ])
        }
        print(table.render())
    }
}
