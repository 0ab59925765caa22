import CSedaCore

/// A stage's counters and latency histograms at one moment, as a response-time
/// controller keeps them between two updates. Reading one copies ~8 KB from
/// the C core (two histograms): a controller does it at most once per update
/// check, never per event.
struct ResponseTimeReading {
    var processed: UInt64
    var batches: UInt64
    var queueLength: Int
    var queueDelay: [UInt64]
    var serviceTime: [UInt64]

    init(stage: OpaquePointer) {
        let st = UnsafeMutablePointer<seda_stage_stats_t>.allocate(capacity: 1)
        defer { st.deallocate() }
        seda_stage_stats(stage, st)
        processed = st.pointee.processed
        batches = st.pointee.batches
        queueLength = Int(st.pointee.queue_length)
        queueDelay = Self.buckets(&st.pointee.queue_delay)
        serviceTime = Self.buckets(&st.pointee.service_time)
    }

    private static func buckets(_ h: UnsafeMutablePointer<seda_histogram_snapshot_t>) -> [UInt64] {
        withUnsafeBytes(of: &h.pointee.buckets) { Array($0.bindMemory(to: UInt64.self)) }
    }
}

/// The latency of the events a stage handled between two readings.
///
/// What is measured, precisely: an event's **response time** here is the
/// time from its enqueue to the return of the handler call that got it,
/// i.e. its queueing delay (enqueue to the start of its batch, from the C
/// core's `queue_delay` histogram) plus its batch's handler time (the
/// `service_time` histogram records batch time / batch size per event, so
/// the per-event value is scaled back up by the window's mean batch size).
/// The C core keeps the two as separate histograms, not their sum per event,
/// so the window's p90 is the p90 of the *sum of independent draws* from the
/// two windowed histograms (their convolution): exact when every event's
/// service time is the same, and close whenever queueing delay and service
/// time are not strongly correlated. Values are bucket midpoints (within
/// ±6.25%). The queueing delay's own p90 is kept as well: it is the part of
/// the response time that admission control can change.
struct ResponseTimeWindow {
    /// Events that completed in the window.
    var events: UInt64
    /// p90 of the response time, ns.
    var p90: Double
    /// p90 of the queueing delay alone, ns.
    var queueDelayP90: Double
    /// Mean events per handler call in the window.
    var meanBatch: Double

    init(from a: ResponseTimeReading, to b: ResponseTimeReading) {
        events = b.processed &- a.processed
        let calls = b.batches &- a.batches
        meanBatch = calls == 0 ? 1 : max(1, Double(events) / Double(calls))
        let q = Self.delta(a.queueDelay, b.queueDelay)
        let s = Self.delta(a.serviceTime, b.serviceTime)
        queueDelayP90 = Self.quantile(q, 0.9)
        p90 = Self.convolvedQuantile(q, s, serviceScale: meanBatch, 0.9)
    }

    /// Bucket counts added between two snapshots (a bucket that seems to
    /// have shrunk, from a snapshot taken while writers ran, counts 0).
    static func delta(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        var d = [UInt64](repeating: 0, count: b.count)
        for i in b.indices where b[i] > a[i] { d[i] = b[i] - a[i] }
        return d
    }

    /// The middle of each bucket's range, ns.
    static let midpoints: [Double] = (0..<Int(SEDA_HISTOGRAM_BUCKETS)).map { b in
        let upper = seda_histogram_bucket_max(UInt32(b))
        let lower = b == 0 ? 0 : seda_histogram_bucket_max(UInt32(b - 1)) + 1
        return (Double(lower) + Double(upper)) / 2
    }

    /// The midpoint of the bucket holding quantile `q`; 0 when empty.
    static func quantile(_ counts: [UInt64], _ q: Double) -> Double {
        let weights = counts.map { Double($0) }
        return quantile(weights, total: weights.reduce(0, +), q)
    }

    static func quantile(_ weights: [Double], total: Double, _ q: Double) -> Double {
        guard total > 0 else { return 0 }
        let rank = q * total
        var seen = 0.0
        for (b, w) in weights.enumerated() where w > 0 {
            seen += w
            if seen >= rank { return midpoints[b] }
        }
        return midpoints[weights.lastIndex { $0 > 0 } ?? 0]
    }

    /// Quantile `q` of X + k·Y for independent X ~ `q`, Y ~ `s`: every pair
    /// of non-empty buckets adds its joint weight to the bucket of the sum.
    /// At most 496² steps, typically a few hundred; once per update.
    static func convolvedQuantile(_ q: [UInt64], _ s: [UInt64], serviceScale k: Double, _ quantile: Double) -> Double {
        let qs = q.indices.filter { q[$0] > 0 }.map { (midpoints[$0], Double(q[$0])) }
        let ss = s.indices.filter { s[$0] > 0 }.map { (midpoints[$0] * k, Double(s[$0])) }
        if qs.isEmpty { return Self.quantile(s, quantile) * k }
        if ss.isEmpty { return Self.quantile(q, quantile) }
        var sum = [Double](repeating: 0, count: Int(SEDA_HISTOGRAM_BUCKETS))
        var total = 0.0
        for (vq, wq) in qs {
            for (vs, ws) in ss {
                let v = vq + vs
                let b = v >= 1.8e19 ? sum.count - 1 : Int(seda_histogram_bucket(UInt64(v)))
                sum[b] += wq * ws
                total += wq * ws
            }
        }
        return Self.quantile(sum, total: total, quantile)
    }
}
