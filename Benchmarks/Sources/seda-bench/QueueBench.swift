import ArgumentParser
import CSedaBench

/// `seda-bench queue`: Seda's event queue beside concurrencykit's ck_ring
/// (MPMC) and a mutex + condition-variable ring.
struct QueueBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Event queue throughput: Seda vs ck_ring MPMC vs a mutex ring (Mops/s).",
        discussion: """
            Every figure is the median of --runs runs, with min and max. Every queue \
            waits the same way when full or empty (64 PAUSEs, then sched_yield). \
            ck_ring has no batch call, so its batch row is 32 single calls per side.
            """
    )

    @Option(help: "Events per run.")
    var items: UInt64 = 5_000_000

    @Option(help: "Queue capacity (a power of two).")
    var capacity: Int = 1024

    @Option(help: "Runs per figure; the median is reported.")
    var runs: Int = 5

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard items >= 64 else { throw ValidationError("--items must be at least 64") }
        guard capacity >= 64, capacity & (capacity - 1) == 0 else {
            throw ValidationError("--capacity must be a power of two, at least 64 (a batch is 32)")
        }
    }

    enum Queue: Int32, CaseIterable {
        case seda = 0
        case ck = 1
        case mutex = 2
    }

    struct Scenario {
        let id: Int32
        let label: String
    }

    static let scenarios = [
        Scenario(id: 0, label: "single-thread enqueue+dequeue pairs"),
        Scenario(id: 1, label: "1P1C, pinned to 2 CPUs"),
        Scenario(id: 2, label: "1P1C, batches of 32"),
        Scenario(id: 3, label: "2P2C on 2 CPUs (oversubscribed)"),
    ]

    struct Figure {
        var samples: [Double]
        var median: Double { Stats.median(samples) }
        var min: Double { samples.min()! }
        var max: Double { samples.max()! }
        var cell: String {
            "\(Stats.fixed(median, 1)) (\(Stats.fixed(min, 1))–\(Stats.fixed(max, 1)))"
        }
    }

    func run() throws {
        let cpus = seda_bench_cpus()
        print(
            "seda-bench queue: \(items) events per run, capacity \(capacity), median of \(runs) runs (min–max), \(cpus) CPUs"
        )
        var table = Table(headers: [
            "scenario", "seda Mops/s", "ck_ring Mops/s", "mutex ring Mops/s",
            "seda/ck", "seda min/median",
        ])
        for scenario in Self.scenarios {
            var figures: [Queue: Figure] = [:]
            // Interleave the queues run by run, so drift in the machine's load
            // touches all of them alike.
            for _ in 0..<runs {
                for queue in Queue.allCases {
                    var mops = 0.0
                    let rc = seda_bench_queue_run(queue.rawValue, scenario.id, items, capacity, &mops)
                    guard rc == 0 else {
                        throw ValidationError("\(queue) \(scenario.label) failed: error \(rc)")
                    }
                    figures[queue, default: Figure(samples: [])].samples.append(mops)
                }
            }
            let seda = figures[.seda]!, ck = figures[.ck]!, mutex = figures[.mutex]!
            table.add([
                scenario.label, seda.cell, ck.cell, mutex.cell,
                Stats.fixed(seda.median / ck.median, 2) + "×",
                Stats.fixed(seda.min / seda.median, 2),
            ])
        }
        print(table.render())
    }
}
