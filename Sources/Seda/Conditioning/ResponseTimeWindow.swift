/// The latency of the events a stage handled between two readings of its
/// statistics (``StageStatistics``), as a response-time controller sees it.
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
/// time are not strongly correlated. The queueing delay's own p90 is kept as
/// well: it is the part of the response time that admission control can
/// change. Both p90s follow Seda's one quantile convention
/// (``HistogramCounts``): the window's queueing-delay p90 over a window
/// that starts with the stage equals the profiler's
/// ``StageSnapshot/queueDelay`` p90.
struct ResponseTimeWindow {
    /// Events that completed in the window.
    var events: UInt64
    /// p90 of the response time, ns.
    var p90: Double
    /// p90 of the queueing delay alone, ns.
    var queueDelayP90: Double
    /// Mean events per handler call in the window.
    var meanBatch: Double

    init(from a: StageStatistics, to b: StageStatistics) {
        events = b.processed &- a.processed
        let calls = b.batches &- a.batches
        meanBatch = calls == 0 ? 1 : max(1, Double(events) / Double(calls))
        let q = b.queueDelay.since(a.queueDelay)
        let s = b.serviceTime.since(a.serviceTime)
        queueDelayP90 = Double(q.quantile(0.9))
        if q.count == 0 && s.count == 0 {
            p90 = 0
        } else {
            p90 = Double(q.convolved(with: s, scale: meanBatch).quantile(0.9))
        }
    }
}
