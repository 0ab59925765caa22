import ArgumentParser
import CSedaBench
import Glibc
import Histogram

/// `seda-bench pipeline`: a 4-stage pipeline of trivial handlers, in Seda and
/// as a Swift developer would write it today without Seda.
///
/// The load generator is the main thread, for every pipeline. A plain thread
/// because Seda, DispatchQueue and an AsyncStream continuation all take events
/// synchronously from any thread, and because a generator `Task` would hold
/// one of the cooperative pool's threads (2 here) for the whole run, taking
/// half the pool from the AsyncStream and AsyncChannel pipelines; in the
/// latency runs it would also have to pace with `Task.sleep` or spin on a pool
/// thread. The main thread costs each pipeline only the CPU it uses. Between
/// open-loop sends it sleeps (clock_nanosleep, absolute deadline) rather than
/// spinning, which on 2 CPUs would take a whole CPU from the pipelines; its
/// timer slack is lowered to 1 ns for the sends so that it wakes on time.
struct PipelineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract:
            "4-stage pipeline: events/s at saturation and open-loop latency, Seda vs AsyncStream, AsyncChannel and DispatchQueue.",
        discussion: """
            Every stage runs a trivial handler (it bumps a counter in the event). \
            The load generator is the main thread, a plain thread outside the \
            cooperative pool and Dispatch's pool, and allocates one event object \
            per event inside the timed loop. Throughput: --events sent as fast as \
            the first stage takes them, timed until the last completes; the median \
            of --runs with min and max, pipelines interleaved run by run. Latency: \
            one open-loop run of --latency-events at half the slowest baseline's \
            median throughput; each event's latency runs from when the schedule \
            said to send it to when the last stage finished it, so a generator or \
            pipeline that falls behind is charged for it.
            """
    )

    /// Stages in every pipeline.
    static let stages = 4

    /// The open-loop rate, as a fraction of the slowest baseline's throughput.
    static let latencyLoad = 0.5

    @Option(help: "Events per throughput run.")
    var events: Int = 1_000_000

    @Option(help: "Throughput runs per pipeline; the median is reported.")
    var runs: Int = 3

    @Option(help: "Events in each pipeline's latency run.")
    var latencyEvents: Int = 100_000

    @Option(help: "Profile one pipeline: measure only throughput of the rows whose label contains this.")
    var only: String?

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard events >= 1_000 else { throw ValidationError("--events must be at least 1000") }
        guard latencyEvents >= 1_000 else { throw ValidationError("--latency-events must be at least 1000") }
    }

    func run() throws {
        if let only {
            for c in (Self.baselines + Self.sedaContenders) where c.label.contains(only) {
                for _ in 0..<runs {
                    print(
                        "\(c.label), batch \(c.batch ?? 1): \(Stats.fixed(try measureThroughput(c) / 1e6, 3)) M events/s"
                    )
                }
            }
            return
        }
        let contenders = Self.baselines + Self.sedaContenders
        let cpus = seda_bench_cpus()
        print(
            "seda-bench pipeline: \(Self.stages) stages, \(events) events per throughput run, median of \(runs) runs (min–max), \(cpus) CPUs"
        )

        // Throughput, interleaved run by run so drift in the machine's load
        // touches every pipeline alike.
        var throughput = [[Double]](repeating: [], count: contenders.count)
        for r in 0..<runs {
            for (i, contender) in contenders.enumerated() {
                let rate = try measureThroughput(contender)
                throughput[i].append(rate)
                progress(
                    "throughput run \(r + 1)/\(runs): \(contender.label): \(Stats.fixed(rate / 1e6, 3)) M events/s")
            }
        }
        let medians = throughput.map(Stats.median)
        let baselineRows = contenders.indices.filter { contenders[$0].isBaseline }
        let slowest = baselineRows.min { medians[$0] < medians[$1] }!
        let fastest = baselineRows.max { medians[$0] < medians[$1] }!
        let offered = medians[slowest] * Self.latencyLoad

        // Latency at one offered rate for all. Lower the main thread's timer
        // slack for the sends only, so the generator wakes on time without
        // spinning a CPU away from the pipelines; threads the pipelines made
        // earlier keep the default.
        var latencies: [(histogram: Histogram<UInt64>, lagMean: Double)] = []
        var slackNote = "the generator sleeps with Linux's default timer slack"
        for contender in contenders {
            let result = try measureLatency(contender, rate: offered)
            latencies.append((result.histogram, result.lagMean))
            if result.lowSlack { slackNote = "the generator sleeps with 1 ns timer slack" }
            progress(
                "latency: \(contender.label): p50 \(micros(result.histogram.valueAtPercentile(50))) µs, p99 \(micros(result.histogram.valueAtPercentile(99))) µs"
            )
        }

        let direct = PipelineContender(label: "no stages", batch: nil, isBaseline: false) { DirectPipeline() }
        let floor = try measureLatency(direct, rate: offered)
        // The generator's own ceiling: allocating events and completing them
        // with no stage between. No pipeline can beat it.
        let ceiling = Stats.median(try (0..<runs).map { _ in try measureThroughput(direct) })

        print(
            "latency: \(latencyEvents) events open-loop at \(Int(offered.rounded())) events/s "
                + "(\(Int(Self.latencyLoad * 100))% of the slowest baseline, \(contenders[slowest].label)); "
                + "from each event's due time; \(slackNote)")
        var table = Table(headers: [
            "pipeline", "batch", "M events/s", "vs fastest baseline",
            "p50 µs", "p99 µs", "p99.9 µs", "gen lag µs",
        ])
        for (i, contender) in contenders.enumerated() {
            let h = latencies[i].histogram
            table.add([
                contender.label,
                contender.batch.map(String.init) ?? "1*",
                "\(Stats.fixed(medians[i] / 1e6, 3)) (\(Stats.fixed(throughput[i].min()! / 1e6, 3))–\(Stats.fixed(throughput[i].max()! / 1e6, 3)))",
                Stats.fixed(medians[i] / medians[fastest], 2) + "×",
                micros(h.valueAtPercentile(50)),
                micros(h.valueAtPercentile(99)),
                micros(h.valueAtPercentile(99.9)),
                Stats.fixed(latencies[i].lagMean / 1e3, 1),
            ])
        }
        print(table.render())
        print("* baselines move one event at a time; the batch column applies to Seda only.")
        print("vs fastest baseline: median events/s over \(contenders[fastest].label)'s.")
        print("gen lag: mean time from an event's due time to its send; the latency figures include it.")
        print(
            "harness ceiling (the generator calls the sink itself, no stages): "
                + "\(Stats.fixed(ceiling / 1e6, 3)) M events/s = \(Stats.fixed(ceiling / medians[fastest], 2))× the fastest baseline."
        )
        print(
            "harness floor at the same rate (the generator calls the sink itself, no stages): "
                + "p50 \(micros(floor.histogram.valueAtPercentile(50))) µs, "
                + "p99 \(micros(floor.histogram.valueAtPercentile(99))) µs, "
                + "p99.9 \(micros(floor.histogram.valueAtPercentile(99.9))) µs, "
                + "gen lag \(Stats.fixed(floor.lagMean / 1e3, 1)) µs.")
    }

    /// One saturation run: events/s from the first send to the last completion.
    private func measureThroughput(_ contender: PipelineContender) throws -> Double {
        let pipeline = try contender.make()
        let sink = PipelineSink(expected: events, recordsLatency: false)
        try pipeline.start(sink: sink)
        settle()

        let batch = max(1, pipeline.ingressBatch)
        let start = PipelineClock.now()
        if batch == 1 {
            for seq in 0..<events {
                pipeline.submit(PipelineEvent(seq: seq, due: 0))
            }
        } else {
            var pending: [PipelineEvent] = []
            pending.reserveCapacity(batch)
            var seq = 0
            while seq < events {
                for s in seq..<min(seq + batch, events) { pending.append(PipelineEvent(seq: s, due: 0)) }
                seq += pending.count
                submit(pending, to: pipeline)
                pending.removeAll(keepingCapacity: true)
            }
        }
        let end = sink.waitForAll()
        pipeline.shutdown()
        return Double(events) * 1e9 / Double(end - start)
    }

    /// One open-loop run at `rate` events/s. Event i is due at start + i/rate;
    /// the generator sleeps until the next event is due and, when it wakes
    /// late, sends everything already due at once (in one
    /// `submit(contentsOf:)` of up to `ingressBatch`) without waiting for
    /// completions.
    private func measureLatency(_ contender: PipelineContender, rate: Double)
        throws -> (histogram: Histogram<UInt64>, lagMean: Double, lowSlack: Bool)
    {
        let pipeline = try contender.make()
        let sink = PipelineSink(expected: latencyEvents, recordsLatency: true)
        try pipeline.start(sink: sink)
        settle()

        let batch = max(1, pipeline.ingressBatch)
        let interval = 1e9 / rate
        var pending: [PipelineEvent] = []
        pending.reserveCapacity(batch)
        var lagTotal = 0.0

        let oldSlack = PipelineClock.setMainThreadTimerSlack(1)
        let start = PipelineClock.now() + 1_000_000
        func due(_ seq: Int) -> UInt64 { start + UInt64(Double(seq) * interval) }
        var seq = 0
        while seq < latencyEvents {
            var now = PipelineClock.now()
            let next = due(seq)
            if now < next {
                PipelineClock.sleep(until: next)
                now = PipelineClock.now()
            }
            if batch == 1 {
                pipeline.submit(PipelineEvent(seq: seq, due: next))
                lagTotal += Double(now - next)
                seq += 1
            } else {
                repeat {
                    let d = due(seq)
                    if d > now { break }
                    pending.append(PipelineEvent(seq: seq, due: d))
                    lagTotal += Double(now - d)
                    seq += 1
                } while seq < latencyEvents && pending.count < batch
                if !pending.isEmpty { submit(pending, to: pipeline) }
                pending.removeAll(keepingCapacity: true)
            }
        }
        if let oldSlack { _ = PipelineClock.setMainThreadTimerSlack(oldSlack) }

        _ = sink.waitForAll()
        pipeline.shutdown()
        return (sink.latencyHistogram(), lagTotal / Double(latencyEvents), oldSlack != nil)
    }

    private func submit(_ pending: [PipelineEvent], to pipeline: any PipelineUnderTest) {
        if pending.count == 1 { pipeline.submit(pending[0]) } else { pipeline.submit(contentsOf: pending) }
    }

    /// Lets a just-started pipeline's tasks or threads reach their waits, so
    /// start-up is not timed.
    private func settle() {
        PipelineClock.sleep(until: PipelineClock.now() + 20_000_000)
    }

    private func micros(_ ns: UInt64) -> String { Stats.fixed(Double(ns) / 1e3, 1) }

    private func progress(_ line: String) {
        var text = line + "\n"
        text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
