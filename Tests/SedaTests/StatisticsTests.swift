import CSedaCore
import Testing

@testable import Seda

/// Advances the manual clock by 1 ms per event it handles, so that the k-th
/// event of a burst waits k ms: a spread of queueing delays.
private struct Tick: EventHandler {
    let clock: SedaClock
    func handle(_ batch: inout EventBatch<Job>) throws {
        try clock.advance(by: .milliseconds(batch.count))
    }
}

@Suite("Statistics")
struct StatisticsTests {
    /// The profiler's p90 and a response-time controller's p90 follow one
    /// convention: over the same events they are the same number (they used
    /// to differ by up to half a bucket: bucket midpoints vs upper bounds).
    @Test func profilerAndControllerAgreeOnTheP90() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let life = Life()
        let sink = try runtime.addStage(
            "tick", handler: Tick(clock: clock),
            options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 1))
        let start = StageStatistics(stage: sink.stage.pointer)
        try sink.enqueueMany((0..<40).map { Job($0, life) })
        waitUntil("processed") { runtime.snapshot()[stage: "tick"]?.processed == 40 }
        let end = StageStatistics(stage: sink.stage.pointer)
        let window = ResponseTimeWindow(from: start, to: end)
        let profiled = runtime.snapshot()[stage: "tick"]!.queueDelay
        #expect(profiled.p90Nanoseconds > 30_000_000, "the 36th of 40 events waited 35 ms")
        #expect(UInt64(window.queueDelayP90) == profiled.p90Nanoseconds)
        // The response time adds 1 ms of service to each: its p90 is above
        // the queueing delay's, by the same convention.
        #expect(window.p90 >= window.queueDelayP90)
        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func quantilesAreBucketUpperBoundsCappedAtTheMaximum() {
        var buckets = [UInt64](repeating: 0, count: HistogramCounts.bucketCount)
        let b = Int(seda_histogram_bucket(1000))
        buckets[b] = 10
        let h = HistogramCounts(buckets: buckets, sumNanoseconds: 10_000, maxNanoseconds: .max)
        #expect(h.quantile(0.9) == seda_histogram_bucket_max(UInt32(b)))
        #expect(h.quantile(0.9) >= 1000)
        let capped = HistogramCounts(buckets: buckets, sumNanoseconds: 10_000, maxNanoseconds: 1001)
        #expect(capped.quantile(0.9) == 1001)
        #expect(h.quantile(.nan) == h.quantile(0), "NaN is not undefined behaviour")
        #expect(HistogramCounts(buckets: [UInt64](repeating: 0, count: HistogramCounts.bucketCount)).quantile(0.5) == 0)
    }

    @Test func aConvolutionWithNothingIsTheHistogramItself() {
        var buckets = [UInt64](repeating: 0, count: HistogramCounts.bucketCount)
        for v: UInt64 in [100, 2000, 30_000, 400_000] { buckets[Int(seda_histogram_bucket(v))] += 5 }
        let h = HistogramCounts(buckets: buckets)
        let empty = HistogramCounts(buckets: [UInt64](repeating: 0, count: HistogramCounts.bucketCount))
        for q in [0.5, 0.9, 0.99] {
            #expect(h.convolved(with: empty, scale: 1).quantile(q) == h.quantile(q))
        }
        // Weights that would overflow when multiplied are scaled, not wrapped.
        var huge = [UInt64](repeating: 0, count: HistogramCounts.bucketCount)
        huge[10] = UInt64.max / 2
        huge[20] = UInt64.max / 2
        let sum = HistogramCounts(buckets: huge).convolved(with: HistogramCounts(buckets: huge), scale: 1)
        #expect(sum.count > 0)
        #expect(sum.quantile(0.9) >= UInt64(HistogramCounts.midpoints[20] * 2))
    }
}
