import CSedaCore

/// A latency distribution summarised: count, mean and quantiles, in
/// nanoseconds. Each quantile is the upper bound of the histogram bucket
/// holding it, capped at the maximum: at most 12.5% above the true value,
/// never below it (the convention every p90 in Seda follows, the
/// response-time controllers' included).
public struct LatencySummary: Sendable, Equatable {
    public var count: UInt64
    public var meanNanoseconds: UInt64
    public var p50Nanoseconds: UInt64
    public var p90Nanoseconds: UInt64
    public var p99Nanoseconds: UInt64
    public var maxNanoseconds: UInt64

    init(_ h: HistogramCounts) {
        count = h.count
        meanNanoseconds = count == 0 ? 0 : h.sumNanoseconds / count
        let q = h.quantiles([0.5, 0.9, 0.99])
        (p50Nanoseconds, p90Nanoseconds, p99Nanoseconds) = (q[0], q[1], q[2])
        maxNanoseconds = h.maxNanoseconds
    }
}

/// One stage's counters at one moment.
public struct StageSnapshot: Sendable, Equatable {
    public var name: String
    /// Events the stage's queue accepted.
    public var enqueued: UInt64
    /// Events the handler has been given and has returned from.
    public var processed: UInt64
    /// Events released at destroy or shutdown instead of processed.
    public var handedBack: UInt64
    /// Events the queue discipline dropped (CoDel under overload).
    public var dropped: UInt64
    /// Times the stage waited for a clogged downstream stage to drain.
    public var pauses: UInt64
    /// Whether an enqueue found the queue full and it has not drained since.
    public var clogged: Bool
    /// Enqueues refused because the queue was full.
    public var rejectedFull: UInt64
    /// Enqueues refused because the stage was closed or the runtime stopping.
    public var rejectedClosed: UInt64
    /// Enqueues refused by the stage's admission controller, by reason.
    public var rejectedByReason: [String: UInt64]
    public var batches: UInt64
    public var handlerErrors: UInt64
    /// Time spent inside the handler.
    public var handlerNanoseconds: UInt64
    /// Batches on the shared threads that ran far longer than the stage's
    /// usual (over 100 ms and 100 times its mean): its handler blocked,
    /// and every stage on the shared threads waited behind it. The first
    /// is logged (a warning with the stage's name, once per stage); give
    /// such a stage a dedicated pool (see <doc:ThreadRules>). Always 0 on
    /// a dedicated pool.
    public var stalledBatches: UInt64
    public var queueLength: UInt64
    /// The longest queue the stage's threads found at a batch start.
    public var queuePeak: UInt64
    /// Live threads of a dedicated pool (0 on the shared thread manager).
    public var threads: Int
    /// Handler calls that may run at once.
    public var concurrency: Int
    /// The largest batch the handler gets now.
    public var batchSize: Int
    /// Per event, from entering this stage's queue to the start of the
    /// handler's batch that got it. One exception saves a clock read on the
    /// shared threads' hop: an event a handler on the shared threads sends
    /// to a FIFO stage of its own runtime is stamped with the start of the
    /// sender's batch, so its delay here may include the time that handler
    /// ran before the enqueue (short: handlers there do not block). A CoDel
    /// stage, a dedicated pool's or an outside thread's enqueue, and
    /// another runtime's handler stamp the moment of entry.
    public var queueDelay: LatencySummary
    /// Handler time per event.
    public var serviceTime: LatencySummary
    /// Stages this stage's handler has enqueued into (learned at run time).
    public var downstream: [String]
    /// The state of the response-time controller guarding the stage (its
    /// admission rate, its measured p90 against its target), if one does:
    /// why requests are being refused.
    public var responseTime: ResponseTimeControllerState? = nil
}

/// Every stage's counters at one moment, with the clock reading.
public struct RuntimeSnapshot: Sendable {
    public var takenAtNanoseconds: Int64
    public var stages: [StageSnapshot]

    public subscript(stage name: String) -> StageSnapshot? { stages.first { $0.name == name } }

    /// Events per second each stage processed between `earlier` and this
    /// snapshot (stages absent from `earlier` count from zero).
    public func processingRates(since earlier: RuntimeSnapshot) -> [String: Double] {
        let dt = Double(takenAtNanoseconds - earlier.takenAtNanoseconds) / 1e9
        var rates: [String: Double] = [:]
        for s in stages {
            let before = earlier[stage: s.name]?.processed ?? 0
            rates[s.name] = dt > 0 ? Double(s.processed &- before) / dt : 0
        }
        return rates
    }

    /// The stage graph as Graphviz DOT: one node per stage with its queue
    /// length, peak, rate (when `earlier` is given), p90 queueing delay, the
    /// latest controller decision about it (from `decisions`, e.g. a
    /// ``ThreadGovernor``'s and a ``BatchController``'s) and its
    /// response-time controller's admission rate and p90 against the target
    /// (``StageSnapshot/responseTime``); one edge per
    /// "enqueues into". The stage with the longest p90 queueing delay, the
    /// bottleneck, is drawn red.
    public func graphviz(since earlier: RuntimeSnapshot? = nil, decisions: [ControllerDecision] = []) -> String {
        let rates = earlier.map { processingRates(since: $0) } ?? [:]
        let bottleneck = stages.filter { $0.queueDelay.count > 0 }
            .max { $0.queueDelay.p90Nanoseconds < $1.queueDelay.p90Nanoseconds }?.name
        func quoted(_ s: String) -> String {
            "\"" + s.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
        }
        var out = "digraph seda {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n"
        for s in stages {
            var label = "\(s.name)\\nqueue \(s.queueLength) (peak \(s.queuePeak))"
            if let r = rates[s.name] { label += "\\n\(formatRate(r)) ev/s" }
            label += "\\np90 wait \(formatNanos(s.queueDelay.p90Nanoseconds))"
            if s.threads > 0 { label += "\\n\(s.threads) threads" }
            if s.clogged { label += "\\nCLOGGED" }
            if s.stalledBatches > 0 { label += "\\n\(s.stalledBatches) stalled batches" }
            if let d = decisions.last(where: { $0.stage == s.name }) {
                label += "\\n\(d.knob.rawValue) \(d.old) → \(d.new)"
            }
            if let rt = s.responseTime {
                let rate = rt.rate.isFinite ? formatRate(rt.rate) + " ev/s" : "unlimited"
                let p90 = rt.lastP90.map { formatDuration($0) } ?? "-"
                label += "\\nadmit \(rate), p90 \(p90) / \(formatDuration(rt.target)) (\(rt.lastDecision.rawValue))"
            }
            let color = s.name == bottleneck ? ", color=red, fontcolor=red, penwidth=2" : ""
            out += "  \(quoted(s.name)) [label=\"\(label)\"\(color)];\n"
        }
        for s in stages {
            for d in s.downstream { out += "  \(quoted(s.name)) -> \(quoted(d));\n" }
        }
        return out + "}\n"
    }
}

extension Runtime {
    /// Every live stage's counters and histograms, in creation order. After
    /// ``shutdown(_:timeout:)``, every stage that was live then, with its
    /// final counters (what it processed, handed back, dropped...) and the
    /// final graph (edges first used while draining included); the clock
    /// reading is the shutdown's.
    public func snapshot() -> RuntimeSnapshot {
        if let last = finalSnapshot.withLock({ $0 }) { return last }
        return liveSnapshot()
    }

    /// The live stages' counters, from the C core's list of stages.
    func liveSnapshot() -> RuntimeSnapshot {
        let collector = Collector()
        let ctx = Unmanaged.passRetained(collector).toOpaque()
        seda_runtime_each_stage(
            handle,
            { ctx, stage in
                let c = Unmanaged<Collector>.fromOpaque(ctx!).takeUnretainedValue()
                c.add(stage!)
            }, ctx)
        Unmanaged<Collector>.fromOpaque(ctx).release()
        let handles = registry.withLock { $0.mapValues { $0.stage } }
        var stages = collector.stages
        for i in stages.indices {
            guard let h = handles[stages[i].name] else { continue }
            stages[i].rejectedByReason = h.rejections.snapshot
            stages[i].responseTime = h.admission?.responseTimeState
        }
        return RuntimeSnapshot(takenAtNanoseconds: clock.now, stages: stages)
    }

    /// Keeps the stages' final counters, read after the shutdown through the
    /// handles the registry held (the C core has unlisted them by then), with
    /// the final stage graph: the C core resolves the edges against the
    /// stages the shutdown took down until the runtime is destroyed, so the
    /// edges first used while draining are there too.
    func keepFinalSnapshot(_ stages: [Registration]) {
        var out: [StageSnapshot] = []
        for reg in stages {
            var s = StageSnapshot(stage: reg.stage.pointer)
            s.rejectedByReason = reg.stage.rejections.snapshot
            s.responseTime = reg.stage.admission?.responseTimeState
            out.append(s)
        }
        finalSnapshot.withLock { $0 = RuntimeSnapshot(takenAtNanoseconds: clock.now, stages: out) }
    }
}

/// Gathers snapshots from the C iteration callback (one thread, no sharing).
private final class Collector {
    var stages: [StageSnapshot] = []
    func add(_ stage: OpaquePointer) { stages.append(StageSnapshot(stage: stage)) }
}

extension StageSnapshot {
    /// Reads one stage's counters, histograms and downstream stages from C
    /// (not the Swift-side rejection counts, which the runtime adds).
    init(stage: OpaquePointer) {
        let s = StageStatistics(stage: stage)
        var downstream: [String] = []
        var edges = [OpaquePointer?](repeating: nil, count: 16)
        var n = seda_stage_edges(stage, &edges, edges.count)
        while n > edges.count {  // more than fit: release these and ask again
            for e in edges { seda_stage_release(e) }
            edges = [OpaquePointer?](repeating: nil, count: n)
            n = seda_stage_edges(stage, &edges, edges.count)
        }
        for e in edges.prefix(n) {
            downstream.append(String(cString: seda_stage_name(e)))
            seda_stage_release(e)
        }
        self.init(
            name: String(cString: seda_stage_name(stage)),
            enqueued: s.enqueued, processed: s.processed, handedBack: s.handedBack, dropped: s.dropped,
            pauses: s.pauses, clogged: s.clogged,
            rejectedFull: s.rejectedFull, rejectedClosed: s.rejectedClosed, rejectedByReason: [:],
            batches: s.batches, handlerErrors: s.handlerErrors, handlerNanoseconds: s.handlerNanoseconds,
            stalledBatches: s.stalledBatches,
            queueLength: s.queueLength, queuePeak: s.queuePeak,
            threads: s.threads, concurrency: s.concurrency, batchSize: s.batchSize,
            queueDelay: LatencySummary(s.queueDelay), serviceTime: LatencySummary(s.serviceTime),
            downstream: downstream.sorted())
    }
}

func formatNanos(_ ns: UInt64) -> String {
    if ns >= 1_000_000_000 { return fixed(Double(ns) / 1e9) + " s" }
    if ns >= 1_000_000 { return fixed(Double(ns) / 1e6) + " ms" }
    if ns >= 1_000 { return fixed(Double(ns) / 1e3) + " µs" }
    return "\(ns) ns"
}

func formatRate(_ r: Double) -> String {
    r >= 1e6 ? fixed(r / 1e6) + "M" : r >= 1e3 ? fixed(r / 1e3) + "k" : fixed(r)
}

/// One decimal, without Foundation.
func fixed(_ x: Double) -> String {
    let tenths = (x * 10).rounded()
    let whole = Int(tenths / 10), frac = Int(abs(tenths.truncatingRemainder(dividingBy: 10)))
    return "\(whole).\(frac)"
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
