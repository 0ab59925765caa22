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
            Seda's file stage and then fio (ioengine io_uring / libaio / psync with numjobs = QD) \
            for --seconds each. Reads go over a data file of --size-gib GiB (created once under \
            --path and reused; every block read is checked); random writes go to distinct blocks \
            of <path>.write, then fdatasync, then every written block is read back and compared. \
            Latency: from acceptance to the completion reaching the client stage (fio: total \
            latency). The ratio is Seda's IOPS over fio's. I/O per submit: requests per \
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
    }

    static func workload(_ name: String) -> Int32? {
        switch name {
        case "randread": return Int32(SEDA_BENCH_DISK_RANDREAD_4K.rawValue)
        case "seqread": return Int32(SEDA_BENCH_DISK_SEQREAD_128K.rawValue)
        case "randwrite": return Int32(SEDA_BENCH_DISK_RANDWRITE_4K.rawValue)
        default: return nil
        }
    }

    func run() throws {
        let bytes = sizeMib.map { $0 << 20 } ?? sizeGib << 30
        var created: Int32 = 0
        let prep = seda_bench_disk_prepare(path, bytes, &created)
        guard prep == 0 else { throw ValidationError("cannot prepare \(path): error \(prep)") }
        print(
            "seda-bench disk: \(path) (\(bytes >> 20) MiB, \(created != 0 ? "created" : "reused")), O_DIRECT, "
                + "\(Stats.fixed(seconds, 1)) s per run\(registered ? ", registered buffers" : "")")
        var table = Table(headers: [
            "workload", "QD", "engine", "Seda IOPS", "MB/s", "p50 µs", "p99 µs",
            "I/O per submit", "I/O per reap", "check", "fio IOPS", "fio MB/s", "fio p50", "fio p99",
            "Seda/fio",
        ])
        var seed: UInt64 = 1
        var failures: [String] = []
        for w in workloads {
            for depth in qd {
                for e in engines {
                    seed += 1
                    var cfg = seda_bench_disk_config_t()
                    cfg.file_bytes = bytes
                    cfg.workload = Self.workload(w)!
                    cfg.queue_depth = depth
                    cfg.seconds = seconds
                    cfg.engine = seda_disk_engine_parse(e)
                    cfg.register_buffers = registered ? 1 : -1
                    cfg.cpu_threads = cpuThreads
                    cfg.seed = seed
                    var s = seda_bench_disk_result_t()
                    var f = seda_bench_disk_result_t()
                    let rs = path.withCString { p -> Int32 in
                        cfg.path = p
                        return seda_bench_disk_seda(&cfg, &s)
                    }
                    let rf: Int32 =
                        noFio
                        ? -1
                        : path.withCString { p -> Int32 in
                            cfg.path = p
                            return fio.withCString { seda_bench_disk_fio(&cfg, $0, &f) }
                        }
                    let perSubmit = s.submit_calls > 0 ? Stats.fixed(Double(s.ops) / Double(s.submit_calls), 1) : "-"
                    let perReap = s.reap_calls > 0 ? Stats.fixed(Double(s.ops) / Double(s.reap_calls), 1) : "-"
                    let check =
                        rs != 0
                        ? "error \(rs)"
                        : s.verified == 0
                            ? "MISMATCH"
                            : w == "randwrite" ? "\(s.verified_blocks) equal" : "ok"
                    if rs != 0 || s.verified == 0 { failures.append("\(w) QD\(depth) \(e): \(check)") }
                    if !noFio && rf != 0 { failures.append("\(w) QD\(depth) fio \(e): error \(rf)") }
                    func num(_ ok: Bool, _ x: Double, _ d: Int) -> String { ok ? Stats.fixed(x, d) : "-" }
                    table.add([
                        w, "\(depth)", e,
                        num(rs == 0, s.iops, 0), num(rs == 0, s.mb_per_s, 1),
                        num(rs == 0, s.p50_us, 1), num(rs == 0, s.p99_us, 1), perSubmit, perReap, check,
                        num(rf == 0, f.iops, 0), num(rf == 0, f.mb_per_s, 1),
                        num(rf == 0, f.p50_us, 1), num(rf == 0, f.p99_us, 1),
                        rs == 0 && rf == 0 && f.iops > 0 ? Stats.fixed(s.iops / f.iops, 2) + "×" : "-",
                    ])
                }
            }
        }
        print(table.render())
        if !failures.isEmpty {
            print("FAILED: " + failures.joined(separator: "; "))
            throw ExitCode.failure
        }
    }
}
