import CSedaCore

/// A latency distribution summarised: count, mean and quantiles, in
/// nanoseconds (each quantile within 12.5% of the true value).
public struct LatencySummary: Sendable, Equatable {
    public var count: UInt64
    public var meanNanoseconds: UInt64
    public var p50Nanoseconds: UInt64
    public var p90Nanoseconds: UInt64
    public var p99Nanoseconds: UInt64
    public var maxNanoseconds: UInt64

    init(_ h: UnsafePointer<seda_histogram_snapshot_t>) {
        count = h.pointee.count
        meanNanoseconds = h.pointee.count == 0 ? 0 : h.pointee.sum_ns / h.pointee.count
        p50Nanoseconds = seda_histogram_quantile(h, 0.5)
        p90Nanoseconds = seda_histogram_quantile(h, 0.9)
        p99Nanoseconds = seda_histogram_quantile(h, 0.99)
        maxNanoseconds = h.pointee.max_ns
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
    public var queueLength: UInt64
    /// The longest queue the stage's threads found at a batch start.
    public var queuePeak: UInt64
    /// Live threads of a dedicated pool (0 on the shared thread manager).
    public var threads: Int
    /// Handler calls that may run at once.
    public var concurrency: Int
    /// The largest batch the handler gets now.
    public var batchSize: Int
    /// Enqueue to handler start, per event.
    public var queueDelay: LatencySummary
    /// Handler time per event.
    public var serviceTime: LatencySummary
    /// Stages this stage's handler has enqueued into (learned at run time).
    public var downstream: [String]
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
    /// length, peak, rate (when `earlier` is given), p90 queueing delay and
    /// the latest controller decision about it (from `decisions`, e.g. a
    /// ``ThreadGovernor``'s and a ``BatchController``'s); one edge per
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
            if let d = decisions.last(where: { $0.stage == s.name }) {
                label += "\\n\(d.knob.rawValue) \(d.old) → \(d.new)"
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
    /// Every live stage's counters and histograms, in creation order.
    public func snapshot() -> RuntimeSnapshot {
        let collector = Collector()
        let ctx = Unmanaged.passRetained(collector).toOpaque()
        seda_runtime_each_stage(handle, { ctx, stage in
            let c = Unmanaged<Collector>.fromOpaque(ctx!).takeUnretainedValue()
            c.add(stage!)
        }, ctx)
        Unmanaged<Collector>.fromOpaque(ctx).release()
        let counts = registry.withLock { $0.mapValues { $0.stage.rejections } }
        var stages = collector.stages
        for i in stages.indices {
            stages[i].rejectedByReason = counts[stages[i].name]?.snapshot ?? [:]
        }
        return RuntimeSnapshot(takenAtNanoseconds: clock.now, stages: stages)
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
        let st = UnsafeMutablePointer<seda_stage_stats_t>.allocate(capacity: 1)
        defer { st.deallocate() }
        seda_stage_stats(stage, st)
        var downstream: [String] = []
        var edges = [OpaquePointer?](repeating: nil, count: 16)
        var n = seda_stage_edges(stage, &edges, edges.count)
        while n > edges.count { // more than fit: release these and ask again
            for e in edges { seda_stage_release(e) }
            edges = [OpaquePointer?](repeating: nil, count: n)
            n = seda_stage_edges(stage, &edges, edges.count)
        }
        for e in edges.prefix(n) {
            downstream.append(String(cString: seda_stage_name(e)))
            seda_stage_release(e)
        }
        let s = st.pointee
        self.init(
            name: String(cString: seda_stage_name(stage)),
            enqueued: s.enqueued, processed: s.processed, handedBack: s.handed_back, dropped: s.dropped,
            pauses: s.pauses, clogged: s.clogged != 0,
            rejectedFull: s.rejected_full, rejectedClosed: s.rejected_closed, rejectedByReason: [:],
            batches: s.batches, handlerErrors: s.handler_errors, handlerNanoseconds: s.handler_ns,
            queueLength: s.queue_length, queuePeak: s.queue_peak,
            threads: Int(s.threads), concurrency: Int(s.concurrency), batchSize: Int(s.batch_max),
            queueDelay: withUnsafePointer(to: &st.pointee.queue_delay) { LatencySummary($0) },
            serviceTime: withUnsafePointer(to: &st.pointee.service_time) { LatencySummary($0) },
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
