import ArgumentParser
import Glibc
import Seda
import Synchronization

/// `seda-bench overload`: admission control under overload. A stage of
/// known capacity, a dedicated pool of `--threads` threads each *sleeping*
/// `--service-ms` per event (sleeping, not burning CPU, so that the
/// capacity is the same on 2 shared cores as on 64), is offered open-loop
/// load at multiples of that capacity, with and without a response-time
/// controller; then its capacity halves mid-run; then a flood of
/// low-priority events meets a multi-class controller.
///
/// The load generator is the main thread (as in `seda-bench pipeline`): event
/// i of a stream is due at a fixed time; the generator sleeps until then
/// (absolute deadline, 1 ns timer slack) and, when it wakes late, sends
/// everything already due. An event's latency runs from its due time to the
/// end of its handling, so a late generator is charged for it. Each table
/// row covers the last half of its step: goodput counts completions in that
/// window; the rejected fraction and latency percentiles cover the events
/// *due* in it (latencies of admitted events only). At the end the stage
/// drains (for at most 30 s; events still queued then count as infinitely
/// late).
struct OverloadBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overload",
        abstract:
            "Admission control under overload: goodput and p90 vs offered load, with and without the response-time controller.",
        discussion: """
            Parts: a load ladder (--loads × capacity) per --policies entry; a run at 2× capacity \
            whose pool halves mid-run; a multi-class run (high priority at 0.3×, low at 10× capacity). \
            Default steps are 30 s (about 9 minutes in all); --quick uses 5 s steps (about 2 minutes).
            """
    )

    @Flag(help: "Short steps (5 s) for development; the numbers settle less.")
    var quick = false

    @Option(help: "Seconds per load step (default 30, or 6 with --quick).")
    var stepSeconds: Double?

    @Option(help: "Threads in the stage's pool.")
    var threads: Int = 8

    @Option(help: "Milliseconds each event sleeps in the handler.")
    var serviceMs: Double = 20

    @Option(help: "The controller's p90 response-time target, in milliseconds.")
    var targetMs: Double = 50

    @Option(help: "The stage's queue capacity.")
    var queueCapacity: Int = 4096

    @Option(parsing: .upToNextOption, help: "Offered loads, as multiples of the nominal capacity.")
    var loads: [Double] = [0.5, 1, 2, 5, 10]

    @Option(
        parsing: .upToNextOption,
        help:
            "Admission policies for the ladder and the halving run: none, seda (the default controller), sandstorm (Sandstorm's AIMD constants)."
    )
    var policies: [String] = ["none", "seda"]

    @Option(help: "The gradient law's drain horizon in update windows (default: the law's).")
    var drainUpdates: Double?

    @Option(parsing: .upToNextOption, help: "Parts to run: ladder, halving, multiclass.")
    var parts: [String] = ["ladder", "halving", "multiclass"]

    @Flag(help: "Print every controller update (time, decision, rate, p90s, throughput).")
    var trace = false

    @Option(help: "Write a PNG of p90 and goodput vs offered load here (needs gnuplot).")
    var plot: String?

    func validate() throws {
        guard threads >= 2, serviceMs > 0, targetMs > 0, queueCapacity >= 1, !loads.isEmpty,
            loads.allSatisfy({ $0 > 0 })
        else {
            throw ValidationError("--threads >= 2; --service-ms, --target-ms, --loads > 0; --queue-capacity >= 1")
        }
        if let s = stepSeconds, s < 1 { throw ValidationError("--step-seconds must be at least 1") }
        if let d = drainUpdates, d < 1 { throw ValidationError("--drain-updates must be at least 1") }
        for p in policies where OverloadPolicy(rawValue: p) == nil {
            throw ValidationError("unknown policy '\(p)': none, seda or sandstorm")
        }
        for p in parts where !["ladder", "halving", "multiclass"].contains(p) {
            throw ValidationError("unknown part '\(p)': ladder, halving or multiclass")
        }
    }

    var step: Double { stepSeconds ?? (quick ? 5 : 30) }
    var nominalCapacity: Double { Double(threads) / (serviceMs / 1000) }
    var target: Duration { .nanoseconds(Int64(targetMs * 1e6)) }

    /// Seda's law, with --drain-updates if given.
    var gradient: ResponseTimeControlLaw {
        guard let drainUpdates, case .gradient(let setpoint, _, let probe) = ResponseTimeControlLaw.gradient() else {
            return .gradient()
        }
        return .gradient(setpoint: setpoint, drainUpdates: drainUpdates, probe: probe)
    }

    func run() throws {
        let oldSlack = PipelineClock.setMainThreadTimerSlack(1)
        defer { if let oldSlack { _ = PipelineClock.setMainThreadTimerSlack(oldSlack) } }
        let capacity = try calibrate()
        print(
            """
            seda-bench overload: \(threads) threads sleeping \(Stats.fixed(serviceMs, 1)) ms per event: \
            nominal capacity \(Stats.fixed(nominalCapacity, 0)) events/s, measured \(Stats.fixed(capacity, 0)); \
            target p90 \(Stats.fixed(targetMs, 0)) ms; queue \(queueCapacity); \(Stats.fixed(step, 0)) s steps, \
            each row = the step's last half; \(overloadCPUNote())
            """)
        var ladders: [(OverloadPolicy, [OverloadResult])] = []
        var verdicts: [String] = []

        if parts.contains("ladder") {
            for name in policies {
                let policy = OverloadPolicy(rawValue: name)!
                let phases = loads.map {
                    OverloadPhase(seconds: step, streams: [(nominalCapacity * $0, 1)], threads: threads)
                }
                let windows = phases.indices.map {
                    OverloadWindow(phase: $0, from: 0.5, to: 1, label: "\(Stats.fixed(loads[$0], 1))×")
                }
                let results = try runPhases(phases, windows: windows, policy: policy)
                print("\nLadder, \(policy.title):")
                print(table(results, capacity: capacity, policy: policy))
                ladders.append((policy, results))
            }
            for (policy, results) in ladders where policy != .none {
                let worst = results.map(\.p90).max() ?? 0
                verdicts.append(
                    "\(policy.rawValue) ladder: worst p90 \(fmtMs(worst)) ms = \(Stats.fixed(worst / targetNs, 2))× target "
                        + "(goal ≤ 1.2×) \(worst <= 1.2 * targetNs ? "met" : "MISSED")")
                if let top = results.last {
                    let share = top.goodput / capacity
                    verdicts.append(
                        "\(policy.rawValue) ladder: goodput at \(top.label) = \(Stats.fixed(share * 100, 1))% of measured capacity "
                            + "(goal ≥ 90%) \(share >= 0.9 ? "met" : "MISSED")")
                }
            }
        }

        if parts.contains("halving") {
            for name in policies {
                let policy = OverloadPolicy(rawValue: name)!
                let load = nominalCapacity * 2
                let phases = [
                    OverloadPhase(seconds: step, streams: [(load, 1)], threads: threads),
                    OverloadPhase(seconds: step * 2, streams: [(load, 1)], threads: threads / 2),
                ]
                let windows = [
                    OverloadWindow(phase: 0, from: 0.5, to: 1, label: "full, 2nd half"),
                    OverloadWindow(phase: 1, from: 0, to: 0.25, label: "halved, 1st quarter"),
                    OverloadWindow(phase: 1, from: 0.25, to: 0.5, label: "halved, 2nd quarter"),
                    OverloadWindow(phase: 1, from: 0.5, to: 1, label: "halved, 2nd half"),
                ]
                let results = try runPhases(phases, windows: windows, policy: policy)
                print(
                    "\nCapacity halves (\(threads) → \(threads / 2) threads) under 2× the full capacity, \(policy.title):"
                )
                print(table(results, capacity: capacity, policy: policy, offeredLabel: "window"))
                if policy != .none, let last = results.last {
                    verdicts.append(
                        "\(policy.rawValue) after halving: p90 \(fmtMs(last.p90)) ms = \(Stats.fixed(last.p90 / targetNs, 2))× target "
                            + "(goal ≤ 1.2×) \(last.p90 <= 1.2 * targetNs ? "met" : "MISSED"), goodput "
                            + "\(Stats.fixed(last.goodput / (capacity / 2) * 100, 1))% of half the capacity")
                }
            }
        }

        if parts.contains("multiclass") {
            let phases = [
                OverloadPhase(
                    seconds: step * 2, streams: [(nominalCapacity * 0.3, 0), (nominalCapacity * 10, 1)],
                    threads: threads)
            ]
            let windows = [OverloadWindow(phase: 0, from: 0.5, to: 1, label: "last half")]
            let result = try runPhases(phases, windows: windows, policy: .multiClass)[0]
            print(
                "\nMulti-class: high priority at 0.3× capacity, low priority at 10×, \(OverloadPolicy.multiClass.title):"
            )
            var t = Table(headers: [
                "class", "offered ev/s", "admitted", "goodput ev/s", "p50 ms", "p90 ms", "p99 ms",
                "within target",
            ])
            for c in 0...1 {
                let k = result.classes[c]
                t.add([
                    c == 0 ? "high (0)" : "low (1)", Stats.fixed(Double(k.offered) / result.seconds, 0),
                    fmtPercent(Double(k.admitted), Double(k.offered)),
                    Stats.fixed(Double(k.completed) / result.seconds, 0),
                    fmtMs(k.p50), fmtMs(k.p90), fmtMs(k.p99), fmtPercent(Double(k.withinTarget), Double(k.offered)),
                ])
            }
            print(t.render())
            let high = result.classes[0]
            let admitted = Double(high.admitted) / Double(max(high.offered, 1))
            let served = Double(high.withinTarget) / Double(max(high.offered, 1))
            verdicts.append(
                "multi-class: high priority admitted \(Stats.fixed(admitted * 100, 2))% (goal ≥ 99%) "
                    + "\(admitted >= 0.99 ? "met" : "MISSED"); served within the target \(Stats.fixed(served * 100, 2))%; "
                    + "total goodput \(Stats.fixed(result.goodput / capacity * 100, 1))% of capacity")
        }

        if !verdicts.isEmpty {
            print("\nAgainst the targets:")
            for v in verdicts { print("  " + v) }
        }
        if let plot, !ladders.isEmpty { writePlot(plot, ladders) }
    }

    // MARK: - Running

    /// The pool's real rate: a burst of 3 s worth of events, all queued at
    /// once, timed to the last completion.
    func calibrate() throws -> Double {
        let count = Int(nominalCapacity * (quick ? 1.5 : 3))
        let runtime = try Runtime()
        let log = OverloadLog(expected: count)
        let sink = try runtime.addStage(
            "calibrate", handler: OverloadSleeper(serviceNanoseconds: Int(serviceMs * 1e6), log: log),
            options: stageOptions(capacity: max(queueCapacity, count)))
        let start = PipelineClock.now()
        for _ in 0..<count { try sink.enqueue(OverloadEvent(due: start, priority: 0)) }
        try runtime.shutdown(.drain)
        let last = log.completions().map(\.done).max() ?? start
        return Double(count) / (Double(last - start) / 1e9)
    }

    func stageOptions(capacity: Int? = nil) -> StageOptions {
        StageOptions(
            threadManager: .dedicated(threads: threads, maxThreads: threads), batchSize: 1,
            queueCapacity: capacity ?? queueCapacity)
    }

    func runPhases(_ phases: [OverloadPhase], windows: [OverloadWindow], policy: OverloadPolicy) throws
        -> [OverloadResult]
    {
        let runtime = try Runtime()
        let expected = Int(
            phases.map { $0.seconds * min($0.streams.map(\.0).reduce(0, +), nominalCapacity * 1.5) }.reduce(0, +))
        let log = OverloadLog(expected: expected)
        var controllerState: () -> String = { "" }
        var controller: () -> ResponseTimeControllerState? = { nil }
        let handler = OverloadSleeper(serviceNanoseconds: Int(serviceMs * 1e6), log: log)
        let sink: Sink<OverloadEvent>
        switch policy {
        case .none:
            sink = try runtime.addStage("stage", handler: handler, options: stageOptions())
        case .seda, .sandstorm:
            let c = ResponseTimeController<OverloadEvent>(
                ResponseTimeControllerOptions(
                    target: target, law: policy == .seda ? gradient : .sandstorm))
            controllerState = { fmtRate(c.state.rate) }
            controller = { c.state }
            sink = try runtime.addStage("stage", handler: handler, options: stageOptions(), admission: c)
        case .multiClass:
            let c = MultiClassResponseTimeController<OverloadEvent>(target: target, classes: 2, law: gradient)
            controllerState = { fmtRate(c.state.rate) }
            controller = { c.state }
            sink = try runtime.addStage("stage", handler: handler, options: stageOptions(), admission: c)
        }
        var traced = 0

        // Absolute phase boundaries and windows, in PipelineClock ns.
        let start = PipelineClock.now() + 50_000_000
        var phaseStart: [UInt64] = []
        var t = Double(start)
        for p in phases {
            phaseStart.append(UInt64(t))
            t += p.seconds * 1e9
        }
        let end = UInt64(t)
        let bounds = windows.map { w -> (UInt64, UInt64) in
            let s = Double(phaseStart[w.phase]), len = phases[w.phase].seconds * 1e9
            return (UInt64(s + w.from * len), UInt64(s + w.to * len))
        }
        var offered = [[Int]](repeating: [0, 0], count: windows.count)
        var admitted = [[Int]](repeating: [0, 0], count: windows.count)
        var queueAtEnd = [Int](repeating: 0, count: windows.count)
        var rateAtEnd = [String](repeating: "", count: windows.count)
        var sampled = [Bool](repeating: false, count: windows.count)

        // The generator: one schedule per stream, merged by due time.
        var phase = 0
        var streamStart = [UInt64](repeating: start, count: 2)
        var sent = [Int](repeating: 0, count: 2)
        func due(_ s: Int) -> UInt64 {
            let rate = phases[phase].streams[s].0
            return streamStart[s] + UInt64(Double(sent[s]) / rate * 1e9)
        }
        PipelineClock.sleep(until: start)
        while true {
            let streams = phases[phase].streams.count
            var next = 0
            for s in 1..<max(streams, 1) where due(s) < due(next) { next = s }
            let d = due(next)
            let phaseEnd = phase + 1 < phases.count ? phaseStart[phase + 1] : end
            if d >= phaseEnd {
                if phase + 1 == phases.count { break }
                phase += 1
                if phases[phase].threads != phases[phase - 1].threads {
                    try runtime.setThreads(phases[phase].threads, forStage: "stage")
                }
                streamStart = [phaseStart[phase], phaseStart[phase]]
                sent = [0, 0]
                continue
            }
            let now = PipelineClock.now()
            for w in windows.indices where !sampled[w] && now >= bounds[w].1 {
                sampled[w] = true
                queueAtEnd[w] = Int(runtime.snapshot()[stage: "stage"]?.queueLength ?? 0)
                rateAtEnd[w] = controllerState()
            }
            if trace, let s = controller(), s.updates != traced {
                traced = s.updates
                func d(_ x: Duration?) -> String {
                    x.map { fmtMs(Double($0.components.attoseconds) / 1e9 + Double($0.components.seconds) * 1e9) }
                        ?? "-"
                }
                print(
                    "  t=\(Stats.fixed(Double(Int64(now) - Int64(start)) / 1e9, 2))s \(s.lastDecision.rawValue) rate \(fmtRate(s.rate)) "
                        + "p90 \(d(s.lastP90)) smoothed \(d(s.smoothedP90)) queueing p90 \(d(s.queueDelayP90)) "
                        + "throughput \(Stats.fixed(s.throughput, 0)) events \(s.windowEvents) refused \(s.windowRefusals)"
                )
            }
            if now < d { PipelineClock.sleep(until: d) }
            let priority = phases[phase].streams[next].1
            let ok = sink.enqueueLossy(OverloadEvent(due: d, priority: priority))
            sent[next] += 1
            for w in windows.indices where d >= bounds[w].0 && d < bounds[w].1 {
                offered[w][priority] += 1
                if ok { admitted[w][priority] += 1 }
            }
        }
        for w in windows.indices where !sampled[w] {
            queueAtEnd[w] = Int(runtime.snapshot()[stage: "stage"]?.queueLength ?? 0)
            rateAtEnd[w] = controllerState()
        }
        do throws(SedaError) {
            try runtime.shutdown(.drain, timeout: .seconds(30))
        } catch {
            // Timed out: what was left was released, and counts as never finished.
            guard error == .timedOut else { throw error }
        }

        let completions = log.completions()
        return windows.indices.map { w in
            let (lo, hi) = bounds[w]
            let seconds = Double(hi - lo) / 1e9
            var result = OverloadResult(
                label: windows[w].label, seconds: seconds, load: phases[windows[w].phase].streams.map(\.0).reduce(0, +))
            result.queueAtEnd = queueAtEnd[w]
            result.rate = rateAtEnd[w]
            var latencies: [[UInt64]] = [[], []]
            var done = 0
            for c in completions {
                if c.done >= lo && c.done < hi { done += 1 }
                if c.due >= lo && c.due < hi { latencies[c.priority].append(c.done &- c.due) }
            }
            result.goodput = Double(done) / seconds
            for k in 0...1 {
                var l = latencies[k]
                let unfinished = admitted[w][k] - l.count  // still queued when the drain gave up
                l.append(contentsOf: repeatElement(.max, count: max(0, unfinished)))
                l.sort()
                result.classes[k].offered = offered[w][k]
                result.classes[k].admitted = admitted[w][k]
                result.classes[k].completed = latencies[k].count
                result.classes[k].withinTarget = latencies[k].filter { Double($0) <= targetNs }.count
                result.classes[k].p50 = sortedQuantile(l, 0.5)
                result.classes[k].p90 = sortedQuantile(l, 0.9)
                result.classes[k].p99 = sortedQuantile(l, 0.99)
            }
            var all = latencies[0] + latencies[1]
            let unfinished = admitted[w].reduce(0, +) - all.count
            all.append(contentsOf: repeatElement(.max, count: max(0, unfinished)))
            all.sort()
            result.p50 = sortedQuantile(all, 0.5)
            result.p90 = sortedQuantile(all, 0.9)
            result.p99 = sortedQuantile(all, 0.99)
            result.offered = offered[w].reduce(0, +)
            result.admitted = admitted[w].reduce(0, +)
            return result
        }
    }

    // MARK: - Reporting

    var targetNs: Double { targetMs * 1e6 }

    func table(_ results: [OverloadResult], capacity: Double, policy: OverloadPolicy, offeredLabel: String = "offered")
        -> String
    {
        var headers = [
            offeredLabel, "offered ev/s", "goodput ev/s", "goodput/cap", "rejected", "p50 ms", "p90 ms", "p99 ms",
            "p90/target", "queue at end",
        ]
        if policy != .none { headers.append("rate at end") }
        var t = Table(headers: headers)
        for r in results {
            var row = [
                r.label, Stats.fixed(Double(r.offered) / r.seconds, 0), Stats.fixed(r.goodput, 0),
                fmtPercent(r.goodput, capacity), fmtPercent(Double(r.offered - r.admitted), Double(r.offered)),
                fmtMs(r.p50), fmtMs(r.p90), fmtMs(r.p99), r.p90.isFinite ? Stats.fixed(r.p90 / targetNs, 2) + "×" : "∞",
                "\(r.queueAtEnd)",
            ]
            if policy != .none { row.append(r.rate) }
            t.add(row)
        }
        return t.render()
    }

    func writePlot(_ path: String, _ ladders: [(OverloadPolicy, [OverloadResult])]) {
        guard system("command -v gnuplot >/dev/null 2>&1") == 0 else {
            print("\n(no plot: gnuplot is not installed; apt-get install -y gnuplot-nox)")
            return
        }
        let data = path + ".dat"
        var text =
            "# load " + ladders.map { "p90_ms_\($0.0.rawValue) goodput_\($0.0.rawValue)" }.joined(separator: " ") + "\n"
        for (i, load) in loads.enumerated() {
            text += "\(load)"
            for (_, results) in ladders {
                let p = results[i].p90
                text += " \(p.isFinite ? p / 1e6 : 1e6) \(results[i].goodput)"
            }
            text += "\n"
        }
        guard let f = fopen(data, "w") else {
            print("cannot write \(data)")
            return
        }
        fputs(text, f)
        fclose(f)
        var script = """
            set terminal png size 1200,500
            set output '\(path)'
            set multiplot layout 1,2 title 'Seda overload: \(threads) threads × \(Stats.fixed(serviceMs, 0)) ms, target p90 \(Stats.fixed(targetMs, 0)) ms'
            set logscale xy
            set xlabel 'offered load (× capacity)'
            set ylabel 'p90 latency (ms)'
            set key top left
            set grid

            """
        let p90s = ladders.enumerated().map { i, l in
            "'\(data)' using 1:\(2 + 2 * i) with linespoints title '\(l.0.rawValue)'"
        }
        script += "plot " + p90s.joined(separator: ", ") + ", \(targetMs) with lines dashtype 2 title 'target'\n"
        script += "unset logscale y\nset ylabel 'goodput (events/s)'\nset yrange [0:\(nominalCapacity * 1.15)]\n"
        let goodputs = ladders.enumerated().map { i, l in
            "'\(data)' using 1:\(3 + 2 * i) with linespoints title '\(l.0.rawValue)'"
        }
        script +=
            "plot " + goodputs.joined(separator: ", ") + ", \(nominalCapacity) with lines dashtype 2 title 'capacity'\n"
        script += "unset multiplot\n"
        guard let g = popen("gnuplot", "w") else {
            print("cannot run gnuplot")
            return
        }
        fputs(script, g)
        let rc = pclose(g)
        print(rc == 0 ? "\nplot: \(path) (data: \(data))" : "\ngnuplot failed (\(rc))")
    }
}

/// Which admission policy guards the stage.
enum OverloadPolicy: String {
    case none, seda, sandstorm
    case multiClass = "multiclass"

    var title: String {
        switch self {
        case .none: "no admission control"
        case .seda: "ResponseTimeController (Seda's gradient law)"
        case .sandstorm: "ResponseTimeController (Sandstorm's AIMD: +0.5/s, ÷2)"
        case .multiClass: "MultiClassResponseTimeController"
        }
    }
}

/// A stretch of the run: open-loop streams (events/s, priority) and the pool size.
struct OverloadPhase {
    var seconds: Double
    var streams: [(Double, Int)]
    var threads: Int
}

/// A measured slice of a phase, as fractions of it.
struct OverloadWindow {
    var phase: Int
    var from: Double
    var to: Double
    var label: String
}

struct OverloadResult {
    struct PerClass {
        var offered = 0, admitted = 0, completed = 0, withinTarget = 0
        var p50 = 0.0, p90 = 0.0, p99 = 0.0
    }

    var label: String
    var seconds: Double
    var load: Double
    var offered = 0, admitted = 0
    var goodput = 0.0
    var p50 = 0.0, p90 = 0.0, p99 = 0.0
    var queueAtEnd = 0
    var rate = ""
    var classes = [PerClass(), PerClass()]
}

/// An open-loop event: when it was due, and its class.
final class OverloadEvent: Prioritized, Sendable {
    let due: UInt64
    let priority: Int
    init(due: UInt64, priority: Int) {
        self.due = due
        self.priority = priority
    }
}

struct OverloadCompletion {
    var due: UInt64
    var done: UInt64
    var priority: Int
}

/// Every completion of a run; the pool's threads append (a few hundred a second).
final class OverloadLog: Sendable {
    private let entries: Mutex<[OverloadCompletion]>

    init(expected: Int) {
        var a: [OverloadCompletion] = []
        a.reserveCapacity(expected)
        entries = Mutex(a)
    }

    func record(_ c: OverloadCompletion) { entries.withLock { $0.append(c) } }
    func completions() -> [OverloadCompletion] { entries.withLock { $0 } }
}

/// The stage of known capacity: each event sleeps, then is logged.
struct OverloadSleeper: EventHandler {
    let serviceNanoseconds: Int
    let log: OverloadLog

    func handle(_ batch: inout EventBatch<OverloadEvent>) throws {
        batch.forEach { event in
            let deadline = PipelineClock.now() + UInt64(serviceNanoseconds)
            PipelineClock.sleep(until: deadline)
            log.record(OverloadCompletion(due: event.due, done: PipelineClock.now(), priority: event.priority))
        }
    }
}

/// The nearest-rank quantile of sorted samples; `.max` samples (never
/// finished) read as infinity.
private func sortedQuantile(_ sorted: [UInt64], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = max(1, Int((q * Double(sorted.count)).rounded(.up)))
    let v = sorted[min(rank, sorted.count) - 1]
    return v == .max ? .infinity : Double(v)
}

private func fmtMs(_ ns: Double) -> String {
    guard ns.isFinite else { return "∞ (unfinished)" }
    return ns >= 10e9 ? Stats.fixed(ns / 1e6, 0) : Stats.fixed(ns / 1e6, 1)
}

private func fmtPercent(_ a: Double, _ b: Double) -> String {
    b > 0 ? Stats.fixed(a / b * 100, 1) + "%" : "–"
}

private func fmtRate(_ r: Double) -> String {
    r.isFinite ? Stats.fixed(r, 0) + "/s" : "unlimited"
}

private func overloadCPUNote() -> String {
    "\(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs"
}
