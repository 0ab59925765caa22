import ArgumentParser
import CSedaBench
import CSedaCore

/// `seda-bench disk`: Seda's file stage on each engine beside fio running the
/// matching job, in the same run, over the same O_DIRECT file.
struct DiskBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disk",
        abstract: "Async disk: 4 KiB random / 128 KiB sequential reads and 4 KiB random writes, Seda vs fio.",
        discussion: """
            Rows: each workload at each queue depth on each engine (io_uring, libaio, threads), \
            Seda's file stage beside fio (ioengine io_uring / libaio / psync with numjobs = QD), \
            each run --seconds long, with the same file, size, block size, O_DIRECT and depth. \
            Order (--order): abba (the default) runs each row Seda, fio, fio, Seda, so that a \
            device whose speed drifts during the row (a cloud disk's burst credits, a busy host) \
            weighs on both sides alike; the figures are the means of each side's two runs, \
            "Seda 1st" is the ratio of the first pair (Seda ran first) and "fio 1st" that of the \
            second (fio ran first): if the two differ beyond the noise, the order matters. \
            seda-first / fio-first run each side once in that order (the ratio lands in the \
            matching column). --rounds N repeats the order N times in a row (the figures are \
            the means of all of a side's runs; each column sums its pairs), for a machine whose \
            noise is larger than the difference looked for. Reads go over a data file of --size-gib GiB (created once under \
            --path and reused; every block read is checked); random writes go to distinct blocks \
            of <path>.write, then fdatasync, then every written block is read back and compared \
            (after each Seda run). Latency: from acceptance to the completion reaching the client \
            stage (fio: total latency); with more than one run a side, p50 and p99 are the means \
            of the runs' percentiles. The ratio is Seda's IOPS over fio's. I/O per submit: requests per \
            io_uring_enter / io_submit; I/O per reap: completions per wake-up of the file stage's \
            home worker (io_uring, libaio).
            """
    )

    @Option(help: "The data file (O_DIRECT needs a real file system; tmpfs works on recent kernels).")
    var path: String = "/var/tmp/seda-bench-disk.dat"

    @Option(help: "Size of the data file in GiB.")
    var sizeGib: UInt64 = 1

    @Option(help: "Size of the data file in MiB instead (smoke tests; the issue's figures need 1 GiB or more).")
    var sizeMib: UInt64?

    @Option(help: "Seconds per run.")
    var seconds: Double = 5

    @Option(parsing: .upToNextOption, help: "Queue depths.")
    var qd: [UInt32] = [1, 32]

    @Option(parsing: .upToNextOption, help: "Engines: io_uring, libaio, threads.")
    var engines: [String] = ["io_uring", "libaio", "threads"]

    @Option(parsing: .upToNextOption, help: "Workloads: randread, seqread, randwrite.")
    var workloads: [String] = ["randread", "seqread", "randwrite"]

    @Flag(help: "io_uring: register the buffer pool (fio: --fixedbufs); without it, neither registers.")
    var registered = false

    @Option(help: "Seda's shared threads (0: one per CPU).")
    var cpuThreads: UInt32 = 0

    @Option(help: "The fio executable.")
    var fio: String = "fio"

    @Flag(help: "Run Seda only.")
    var noFio = false

    @Option(help: "Order of the runs in a row: abba (Seda, fio, fio, Seda), seda-first or fio-first (one run each).")
    var order: String = "abba"

    @Option(help: "Rounds of --order per row (the figures are the means over all of a side's runs).")
    var rounds: UInt32 = 1

    @Flag(help: "Also print every run's IOPS in the order run (is a side slower in its later run?).")
    var eachRun = false

    func validate() throws {
        guard seconds > 0, sizeGib >= 1, sizeMib.map({ $0 >= 1 }) ?? true, !qd.isEmpty,
            qd.allSatisfy({ $0 >= 1 && $0 <= 1024 })
        else {
            throw ValidationError("--seconds > 0, --size-gib >= 1, --size-mib >= 1, --qd values in 1...1024")
        }
        for e in engines where seda_disk_engine_parse(e) <= 0 {
            throw ValidationError("unknown engine \(e)")
        }
        for w in workloads where Self.workload(w) == nil {
            throw ValidationError("unknown workload \(w)")
        }
        guard rounds >= 1, rounds <= 100 else { throw ValidationError("--rounds in 1...100") }
        guard ["abba", "seda-first", "fio-first"].contains(order) else {
            throw ValidationError("--order: abba, seda-first or fio-first")
        }
    }

    static func workload(_ name: String) -> Int32? {
        switch name {
        case "randread": return Int32(SEDA_BENCH_DISK_RANDREAD_4K.rawValue)
        case "seqread": return Int32(SEDA_BENCH_DISK_SEQREAD_128K.rawValue)
        case "randwrite": return Int32(SEDA_BENCH_DISK_RANDWRITE_4K.rawValue)
        default: return nil
        }
    }

    /// The runs of one row, in order: true for Seda, false for fio.
    func sequence() -> [Bool] {
        let one: [Bool]
        switch order {
        case _ where noFio: one = [true]
        case "seda-first": one = [true, false]
        case "fio-first": one = [false, true]
        default: one = [true, false, false, true]
        }
        return Array([[Bool]](repeating: one, count: Int(rounds)).joined())
    }

    func run() throws {
        let bytes = sizeMib.map { $0 << 20 } ?? sizeGib << 30
        var created: Int32 = 0
        let prep = seda_bench_disk_prepare(path, bytes, &created)
        guard prep == 0 else { throw ValidationError("cannot prepare \(path): error \(prep)") }
        let runs = sequence()
        print(
            "seda-bench disk: \(path) (\(bytes >> 20) MiB, \(created != 0 ? "created" : "reused")), O_DIRECT, "
                + "\(Stats.fixed(seconds, 1)) s per run, order "
                + runs.prefix(runs.count / Int(rounds)).map { $0 ? "Seda" : "fio" }.joined(separator: "-")
                + (rounds > 1 ? " x \(rounds)" : "")
                + "\(registered ? ", registered buffers" : "")")
        var table = Table(headers: [
            "workload", "QD", "engine", "Seda IOPS", "MB/s", "p50 µs", "p99 µs",
            "I/O per submit", "I/O per reap", "check", "fio IOPS", "fio MB/s", "fio p50", "fio p99",
            "Seda/fio", "Seda 1st", "fio 1st",
        ])
        var each = Table(headers: ["workload", "QD", "engine"] + runs.indices.map { "run \($0 + 1)" })
        var seed: UInt64 = 1
        var failures: [String] = []
        for w in workloads {
            for depth in qd {
                for e in engines {
                    var cfg = seda_bench_disk_config_t()
                    cfg.file_bytes = bytes
                    cfg.workload = Self.workload(w)!
                    cfg.queue_depth = depth
                    cfg.seconds = seconds
                    cfg.engine = seda_disk_engine_parse(e)
                    cfg.register_buffers = registered ? 1 : -1
                    cfg.cpu_threads = cpuThreads
                    // Each run in order; a side's runs in `sedaRuns` / `fioRuns`
                    // (nil: failed), and for each Seda-fio pair the side that ran first.
                    var sedaRuns: [seda_bench_disk_result_t?] = []
                    var fioRuns: [seda_bench_disk_result_t?] = []
                    var firstOfPair: [Bool] = []
                    var sedaChecks: [String] = []
                    var eachRow = [w, "\(depth)", e]
                    for (i, isSeda) in runs.enumerated() {
                        if i % 2 == 0 { firstOfPair.append(isSeda) }
                        seed += 1  // a fresh seed per Seda run: other offsets, other written bytes
                        cfg.seed = seed
                        var out = seda_bench_disk_result_t()
                        let r = path.withCString { p -> Int32 in
                            cfg.path = p
                            return isSeda
                                ? seda_bench_disk_seda(&cfg, &out)
                                : fio.withCString { seda_bench_disk_fio(&cfg, $0, &out) }
                        }
                        eachRow.append((isSeda ? "Seda " : "fio ") + (r == 0 ? Stats.fixed(out.iops, 0) : "error \(r)"))
                        if isSeda {
                            let check =
                                r != 0
                                ? "error \(r)"
                                : out.verified == 0
                                    ? "MISMATCH"
                                    : w == "randwrite" ? "\(out.verified_blocks) equal" : "ok"
                            if r != 0 || out.verified == 0 { failures.append("\(w) QD\(depth) \(e): \(check)") }
                            sedaChecks.append(check)
                            sedaRuns.append(r == 0 ? out : nil)
                        } else {
                            if r != 0 { failures.append("\(w) QD\(depth) fio \(e): error \(r)") }
                            fioRuns.append(r == 0 ? out : nil)
                        }
                    }
                    each.add(eachRow)
                    let s = sedaRuns.compactMap { $0 }
                    let f = fioRuns.compactMap { $0 }
                    let sOK = !s.isEmpty && s.count == sedaRuns.count
                    let fOK = !f.isEmpty && f.count == fioRuns.count
                    func mean(_ xs: [seda_bench_disk_result_t], _ k: (seda_bench_disk_result_t) -> Double) -> Double {
                        xs.isEmpty ? 0 : xs.map(k).reduce(0, +) / Double(xs.count)
                    }
                    func num(_ ok: Bool, _ x: Double, _ d: Int) -> String { ok ? Stats.fixed(x, d) : "-" }
                    func ratio(_ a: Double, _ b: Double) -> String { b > 0 ? Stats.fixed(a / b, 2) + "×" : "-" }
                    let ops = s.map { Double($0.ops) }.reduce(0, +)
                    let submits = s.map { Double($0.submit_calls) }.reduce(0, +)
                    let reaps = s.map { Double($0.reap_calls) }.reduce(0, +)
                    // Pair k: Seda run k beside fio run k; the column is the side that ran first.
                    // Each pair (run 2k, run 2k + 1) holds Seda's run k and fio's run k;
                    // the columns sum the pairs by the side that ran first.
                    var firstSums = [true: (0.0, 0.0), false: (0.0, 0.0)]
                    for k in firstOfPair.indices where k < sedaRuns.count && k < fioRuns.count {
                        guard let a = sedaRuns[k], let b = fioRuns[k] else { continue }
                        firstSums[firstOfPair[k]]!.0 += a.iops
                        firstSums[firstOfPair[k]]!.1 += b.iops
                    }
                    let sedaFirst = ratio(firstSums[true]!.0, firstSums[true]!.1)
                    let fioFirst = ratio(firstSums[false]!.0, firstSums[false]!.1)
                    let sIops = mean(s) { $0.iops }
                    let fIops = mean(f) { $0.iops }
                    table.add([
                        w, "\(depth)", e,
                        num(sOK, sIops, 0), num(sOK, mean(s) { $0.mb_per_s }, 1),
                        num(sOK, mean(s) { $0.p50_us }, 1), num(sOK, mean(s) { $0.p99_us }, 1),
                        submits > 0 ? Stats.fixed(ops / submits, 1) : "-",
                        reaps > 0 ? Stats.fixed(ops / reaps, 1) : "-",
                        sOK && s.allSatisfy { $0.verified != 0 }
                            ? (w == "randwrite" ? "\(s.map { $0.verified_blocks }.reduce(0, +)) equal" : "ok")
                            : sedaChecks.joined(separator: ", "),
                        num(fOK, fIops, 0), num(fOK, mean(f) { $0.mb_per_s }, 1),
                        num(fOK, mean(f) { $0.p50_us }, 1), num(fOK, mean(f) { $0.p99_us }, 1),
                        sOK && fOK ? ratio(sIops, fIops) : "-", sedaFirst, fioFirst,
                    ])
                }
            }
        }
        print(table.render())
        if eachRun {
            print("IOPS of each run, in the order run:")
            print(each.render())
        }
        if !failures.isEmpty {
            print("FAILED: " + failures.joined(separator: "; "))
            throw ExitCode.failure
        }
    }
}
