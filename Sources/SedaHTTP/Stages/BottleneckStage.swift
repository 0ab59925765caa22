import Glibc
import Seda

/// Haboob's `/bottleneck`: a stage with a bounded pool that burns a fixed
/// amount of CPU per request, then answers with the default page. It
/// exists to show load conditioning end to end (a response-time controller
/// on its sink sheds the excess as 503s instead of letting the queue grow).
struct BottleneckStage: EventHandler {
    typealias Event = HTTPDeferredRequest
    let page: CachedPage
    let work: Duration

    func handle(_ batch: inout EventBatch<HTTPDeferredRequest>) throws {
        for i in 0..<batch.count {
            guard let request = batch.take(i) else { continue }
            burnCPU(work)
            request.result = .page(page)
            request.reply()
        }
    }
}

/// Spins until this thread has used `duration` of CPU time (not wall time:
/// a preempted thread still does the full amount of work). Returns a value
/// derived from the work so it cannot be optimised away.
@discardableResult
func burnCPU(_ duration: Duration) -> UInt64 {
    let (s, a) = duration.components
    let ns = s >= Int64.max / 1_000_000_000 ? Int64.max : max(0, s * 1_000_000_000 + a / 1_000_000_000)
    if ns == 0 { return 0 }
    func cpuNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
    let start = cpuNow()
    let (deadline, overflow) = start.addingReportingOverflow(ns)
    let end = overflow ? Int64.max : deadline
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    while true {
        for _ in 0..<512 {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
        }
        if cpuNow() >= end { return x }
    }
}
