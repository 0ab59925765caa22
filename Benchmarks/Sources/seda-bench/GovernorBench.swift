import ArgumentParser
import Glibc
@_spi(Threads) import Seda
import Synchronization

/// `seda-bench governor`: the seed's thread governor experiment. Sandstorm's
/// Gnutella router had a bottleneck stage (the logger): 15 % of packets
/// were queries that took 20 ms. At 1000 packets/s that is λ·p·L = 3
/// threads' worth of work; the governor, sampling the queue every 2 s and
/// adding a thread when it reached the threshold, added 2 threads to 1 and
/// response time stabilised.
///
/// Here one dedicated stage starts with `--threads` threads; its handler
/// sleeps `--slow-ms` for a fixed pseudo-random `--slow-fraction` of the
/// events (sleeping, not burning CPU: the slide's queries waited, and this
/// machine has few cores). The main thread offers `--rate` events/s open
/// loop (event i is due at start + i/rate, whatever the stage does); each
/// event's response time runs from its due time to the end of its handling.
/// A sampler thread calls the governor's `tick()` every `--interval-ms` and
/// prints one row per sample.
struct GovernorBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "governor",
        abstract:
            "Thread governor: Sandstorm's bottleneck experiment; threads, queue and p90 response time per sample.",
        discussion: """
            One dedicated stage, batch size 1; 15% of events sleep 20 ms; 1000 events/s open loop \
            (λ·p·L = 3 threads of work). The governor samples every --interval-ms: it adds a thread \
            when the queue is at --threshold and not about to drain, and removes one idle for \
            --idle-ms. Each row: the queue just before the governor samples, the pool size after its decision, the \
            events/s handled and the p90 response time (from due time) of the events that finished \
            in the interval. Anchor: the seed's Sandstorm run, which settled at 3 threads.
            """
    )

    @Option(help: "Offered load, events per second (open loop).")
    var rate: Int = 1000

    @Option(help: "Fraction of events that are slow.")
    var slowFraction: Double = 0.15

    @Option(help: "How long a slow event sleeps, milliseconds.")
    var slowMs: Int = 20

    @Option(help: "Seconds of load.")
    var seconds: Int = 30

    @Option(help: "Governor sampling interval, milliseconds (Sandstorm: 2000).")
    var intervalMs: Int = 2000

    @Option(help: "Queue length that adds a thread.")
    var threshold: Int = 100

    @Option(help: "Pool threads at start.")
    var threads: Int = 1

    @Option(help: "Pool limit (maxThreads).")
    var maxThreads: Int = 8

    @Option(help: "Idle time that removes a thread, milliseconds.")
    var idleMs: Int = 1000

    @Flag(help: "Back off a thread that adds no throughput.")
    var autoMaxDetect = false

    func validate() throws {
        guard rate >= 1, seconds >= 1, intervalMs >= 10, threshold >= 1, idleMs >= 1 else {
            throw ValidationError("--rate, --seconds, --threshold, --idle-ms >= 1; --interval-ms >= 10")
        }
        guard (0...1).contains(slowFraction), slowMs >= 0 else {
            throw ValidationError("--slow-fraction in 0...1, --slow-ms >= 0")
        }
        guard threads >= 1, maxThreads >= threads, maxThreads <= 1024 else {
            throw ValidationError("1 <= --threads <= --max-threads <= 1024")
        }
    }

    func run() throws {
        let work = Double(rate) * slowFraction * Double(slowMs) / 1000
        print(
            "seda-bench governor: \(rate) events/s open loop for \(seconds) s; "
                + "\(Int((slowFraction * 100).rounded()))% sleep \(slowMs) ms (λ·p·L = \(Stats.fixed(work, 1)) threads); "
                + "sampling every \(intervalMs) ms, threshold \(threshold), threads \(threads)...\(maxThreads), "
                + "idle \(idleMs) ms\(autoMaxDetect ? ", autoMaxDetect" : "")")

        let events = rate * seconds
        var capacity = 1024
        while capacity < events, capacity < 1 << 22 { capacity <<= 1 }
        let runtime = try Runtime(cpuThreads: 1)
        let log = GovernorResponseLog()
        let sink = try runtime.addStage(
            "logger", handler: GovernorSlowLogger(slowNanoseconds: slowMs * 1_000_000, log: log),
            options: StageOptions(
                threadManager: .dedicated(threads: threads, maxThreads: maxThreads),
                batchSize: 1, queueCapacity: capacity))
        var settings = GovernorSettings()
        settings.delay = .milliseconds(intervalMs)
        settings.threshold = threshold
        settings.idleTimeThreshold = .milliseconds(idleMs)
        settings.autoMaxDetect = autoMaxDetect
        let governor = try ThreadGovernor(runtime: runtime, settings: settings)
        try governor.govern("logger")

        let start = PipelineClock.now() + 10_000_000
        let interval = UInt64(intervalMs) * 1_000_000
        let end = start + UInt64(seconds) * 1_000_000_000
        let rows = Mutex<[GovernorRow]>([])
        let sampler = try SedaThread(name: "sampler") {
            var last = runtime.snapshot()[stage: "logger"]!
            var lastTime = start
            var k: UInt64 = 1
            while start + k * interval <= end {
                let at = start + k * interval
                PipelineClock.sleep(until: at)
                let seen = runtime.snapshot()[stage: "logger"]!
                let made = governor.tick()
                let after = runtime.snapshot()[stage: "logger"]!
                let now = PipelineClock.now()
                let latencies = log.takeAll()
                let row = GovernorRow(
                    seconds: Double(at - start) / 1e9, queue: Int(seen.queueLength), threads: after.concurrency,
                    rate: Double(seen.processed - last.processed) * 1e9 / Double(now - lastTime),
                    p90: GovernorBench.quantile(latencies, 0.9),
                    decision: made.map { "\($0.old) → \($0.new): \($0.reason)" }.joined(separator: "; "))
                rows.withLock { $0.append(row) }
                governorProgress(
                    "t=\(Stats.fixed(row.seconds, 1)) s queue \(row.queue) threads \(row.threads) "
                        + "p90 \(Stats.fixed(Double(row.p90) / 1e6, 1)) ms \(row.decision)")
                last = seen
                lastTime = now
                k += 1
            }
        }

        // The load: open loop from the main thread.
        var rejected = 0
        for i in 0..<events {
            let due = start + UInt64(i) * 1_000_000_000 / UInt64(rate)
            PipelineClock.sleep(until: due)
            do throws(SedaError) {
                try sink.enqueue(GovernorEvent(due: due, slow: GovernorBench.isSlow(i, slowFraction)))
            } catch {
                rejected += 1
            }
        }
        sampler.join()
        while let s = runtime.snapshot()[stage: "logger"], s.processed < UInt64(events - rejected) { usleep(1000) }
        try runtime.shutdown()

        var table = Table(headers: ["t s", "queue", "threads", "events/s", "p90 response ms", "governor decision"])
        for r in rows.withLock({ $0 }) {
            table.add([
                Stats.fixed(r.seconds, 1), "\(r.queue)", "\(r.threads)", "\(Int(r.rate.rounded()))",
                Stats.fixed(Double(r.p90) / 1e6, 1), r.decision,
            ])
        }
        print(table.render())
        let decisions = governor.decisions
        let settled = rows.withLock { $0.last?.threads } ?? threads
        let lastChange = decisions.last.map {
            Stats.fixed(Double($0.timeNanoseconds - decisions[0].timeNanoseconds) / 1e9, 1)
        }
        print(
            "settled at \(settled) threads (\(settled - threads) added to \(threads)); "
                + "\(decisions.count) decisions\(lastChange.map { ", the last \($0) s after the first" } ?? "")")
        print(
            "anchor: Sandstorm (seed slides) added 2 threads to 1 = 3 threads; λ·p·L = \(Stats.fixed(work, 1)); "
                + "Seda/Sandstorm \(Stats.fixed(Double(settled) / 3, 2))×")
        if rejected > 0 { print("rejected (queue full): \(rejected) events") }
    }

    /// The value at quantile `q` of `xs` (nearest rank); 0 for none.
    static func quantile(_ xs: [UInt64], _ q: Double) -> UInt64 {
        guard !xs.isEmpty else { return 0 }
        let sorted = xs.sorted()
        return sorted[min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1)]
    }

    /// Whether event `i` is slow: a fixed pseudo-random choice (SplitMix64),
    /// so every run offers the same load.
    static func isSlow(_ i: Int, _ fraction: Double) -> Bool {
        var z = UInt64(truncatingIfNeeded: i) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53) < fraction
    }
}

private struct GovernorRow: Sendable {
    var seconds: Double
    var queue: Int
    var threads: Int
    var rate: Double
    var p90: UInt64
    var decision: String
}

private final class GovernorEvent: Sendable {
    /// When the schedule said to send it (`PipelineClock` ns).
    let due: UInt64
    let slow: Bool
    init(due: UInt64, slow: Bool) {
        self.due = due
        self.slow = slow
    }
}

/// Response times of the events finished since the last `takeAll()`.
private final class GovernorResponseLog: Sendable {
    private let latencies = Mutex<[UInt64]>([])
    func record(_ ns: UInt64) { latencies.withLock { $0.append(ns) } }
    func takeAll() -> [UInt64] {
        latencies.withLock { l in
            defer { l = [] }
            return l
        }
    }
}

/// The bottleneck: sleeps for slow events, then records the response time.
private struct GovernorSlowLogger: EventHandler {
    let slowNanoseconds: Int
    let log: GovernorResponseLog
    func handle(_ batch: inout EventBatch<GovernorEvent>) throws {
        batch.forEach { event in
            if event.slow {
                PipelineClock.sleep(until: PipelineClock.now() + UInt64(slowNanoseconds))
            }
            let now = PipelineClock.now()
            log.record(now > event.due ? now - event.due : 0)
        }
    }
}

private func governorProgress(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
