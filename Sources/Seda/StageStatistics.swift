import CSedaCore

/// A latency histogram copied out of the C core: its log-linear bucket
/// counts (see `include/seda/stats.h`), the sum and the largest value, in
/// nanoseconds.
///
/// Quantiles follow one convention everywhere in Seda, the C core's
/// `seda_histogram_quantile`: the nearest-rank sample's bucket, reported as
/// that bucket's upper bound, capped at the largest value seen (so within
/// 12.5% above the true value, never below it). The profiler's summaries
/// (``LatencySummary``) and the response-time controllers' windows both ask
/// the C function, so the p90 an operator reads and the p90 a controller
/// acts on agree on the same data.
struct HistogramCounts: Sendable, Equatable {
    /// One count per bucket, `SEDA_HISTOGRAM_BUCKETS` of them.
    var buckets: [UInt64]
    var sumNanoseconds: UInt64
    var maxNanoseconds: UInt64

    static let bucketCount = Int(SEDA_HISTOGRAM_BUCKETS)

    init(buckets: [UInt64], sumNanoseconds: UInt64 = 0, maxNanoseconds: UInt64 = .max) {
        precondition(buckets.count == Self.bucketCount, "a histogram has \(Self.bucketCount) buckets")
        self.buckets = buckets
        self.sumNanoseconds = sumNanoseconds
        self.maxNanoseconds = maxNanoseconds
    }

    init(_ h: UnsafeMutablePointer<seda_histogram_snapshot_t>) {
        buckets = withUnsafeBytes(of: &h.pointee.buckets) { Array($0.bindMemory(to: UInt64.self)) }
        sumNanoseconds = h.pointee.sum_ns
        maxNanoseconds = h.pointee.max_ns
    }

    /// Samples: the sum of the buckets (what the quantiles see).
    var count: UInt64 { buckets.reduce(0) { $0 &+ $1 } }

    /// The values at quantiles `qs` (each clamped to 0...1; NaN counts as 0),
    /// by the C core's convention; 0 for an empty histogram.
    func quantiles(_ qs: [Double]) -> [UInt64] {
        let h = UnsafeMutablePointer<seda_histogram_snapshot_t>.allocate(capacity: 1)
        defer { h.deallocate() }
        h.initialize(to: seda_histogram_snapshot_t())
        h.pointee.count = count
        h.pointee.sum_ns = sumNanoseconds
        h.pointee.max_ns = maxNanoseconds
        withUnsafeMutableBytes(of: &h.pointee.buckets) { raw in
            let out = raw.bindMemory(to: UInt64.self)
            for i in buckets.indices { out[i] = buckets[i] }
        }
        return qs.map { q in seda_histogram_quantile(h, q.isNaN ? 0 : min(max(q, 0), 1)) }
    }

    func quantile(_ q: Double) -> UInt64 { quantiles([q])[0] }

    /// The samples added since `earlier`, a reading of the same histogram (a
    /// bucket that seems to have shrunk, read while writers ran, counts 0).
    /// The maximum stays this reading's: an upper bound for the window's.
    func since(_ earlier: HistogramCounts) -> HistogramCounts {
        var d = [UInt64](repeating: 0, count: buckets.count)
        for i in buckets.indices where buckets[i] > earlier.buckets[i] { d[i] = buckets[i] - earlier.buckets[i] }
        let sum = sumNanoseconds >= earlier.sumNanoseconds ? sumNanoseconds - earlier.sumNanoseconds : 0
        return HistogramCounts(buckets: d, sumNanoseconds: sum, maxNanoseconds: maxNanoseconds)
    }

    /// The middle of each bucket's range, ns: where a value in the bucket is
    /// taken to be when values are added up (``convolved(with:scale:)``).
    static let midpoints: [Double] = (0..<bucketCount).map { b in
        let upper = seda_histogram_bucket_max(UInt32(b))
        let lower = b == 0 ? 0 : seda_histogram_bucket_max(UInt32(b - 1)) + 1
        return (Double(lower) + Double(upper)) / 2
    }

    /// The distribution of X + k·Y for independent X drawn from this
    /// histogram and Y from `other`: every pair of non-empty buckets adds its
    /// joint weight to the bucket of the sum of their midpoints. At most
    /// 496² steps, typically a few hundred. Weights are integers (the
    /// product of the counts, scaled down together if the product would
    /// overflow), so its quantiles follow the one convention; it has no
    /// maximum of its own (quantiles are bucket upper bounds).
    func convolved(with other: HistogramCounts, scale k: Double) -> HistogramCounts {
        var xs = buckets.indices.filter { buckets[$0] > 0 }.map { (Self.midpoints[$0], buckets[$0]) }
        var ys = other.buckets.indices.filter { other.buckets[$0] > 0 }.map {
            (Self.midpoints[$0] * k, other.buckets[$0])
        }
        if xs.isEmpty { xs = [(0, 1)] }
        if ys.isEmpty { ys = [(0, 1)] }
        // Halve both sides' weights (keeping every bucket) until the total
        // of the products fits.
        func total(_ v: [(Double, UInt64)]) -> UInt64 { v.reduce(0) { $0 &+ $1.1 } }
        while total(xs).multipliedReportingOverflow(by: total(ys)).overflow {
            xs = xs.map { ($0.0, ($0.1 + 1) / 2) }
            ys = ys.map { ($0.0, ($0.1 + 1) / 2) }
        }
        var sum = [UInt64](repeating: 0, count: Self.bucketCount)
        for (vx, wx) in xs {
            for (vy, wy) in ys {
                let v = vx + vy
                let b = v >= 1.8e19 ? Self.bucketCount - 1 : Int(seda_histogram_bucket(UInt64(v)))
                sum[b] += wx * wy
            }
        }
        return HistogramCounts(buckets: sum)
    }
}

/// One reading of a stage's counters and histograms: the one place Swift
/// calls `seda_stage_stats`. Reading copies ~8 KB (two histograms): the
/// profiler and the controllers do it once per sample, never per event.
struct StageStatistics: Sendable {
    var enqueued, processed, handedBack, dropped, pauses: UInt64
    var rejectedFull, rejectedClosed, batches, handlerErrors, handlerNanoseconds, stalledBatches: UInt64
    var queueLength, queuePeak: UInt64
    var threads, concurrency, batchSize: Int
    var clogged: Bool
    var queueDelay: HistogramCounts
    var serviceTime: HistogramCounts

    init(stage: OpaquePointer) {
        let st = UnsafeMutablePointer<seda_stage_stats_t>.allocate(capacity: 1)
        defer { st.deallocate() }
        st.initialize(to: seda_stage_stats_t())
        seda_stage_stats(stage, st)
        let s = st.pointee
        enqueued = s.enqueued
        processed = s.processed
        handedBack = s.handed_back
        dropped = s.dropped
        pauses = s.pauses
        rejectedFull = s.rejected_full
        rejectedClosed = s.rejected_closed
        batches = s.batches
        handlerErrors = s.handler_errors
        handlerNanoseconds = s.handler_ns
        stalledBatches = s.stalled_batches
        queueLength = s.queue_length
        queuePeak = s.queue_peak
        threads = Int(s.threads)
        concurrency = Int(s.concurrency)
        batchSize = Int(s.batch_max)
        clogged = s.clogged != 0
        queueDelay = HistogramCounts(&st.pointee.queue_delay)
        serviceTime = HistogramCounts(&st.pointee.service_time)
    }
}
