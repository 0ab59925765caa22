import Dispatch
import Glibc
import Histogram
import Synchronization

/// A 4-stage pipeline of trivial handlers that `seda-bench pipeline` drives:
/// one of the baselines, or Seda.
///
/// Life cycle, one fresh instance per measurement: the harness makes it,
/// calls `start(sink:)` once, then `submit` for every event, waits on the
/// sink until every event has completed, then calls `shutdown()` once.
///
/// Thread rules:
/// - `start`, `submit`, `submit(contentsOf:)` and `shutdown` are called from
///   the load generator only: one plain thread (the process's main thread),
///   never a Swift concurrency task. They may block; a stage 1 that is full
///   may spin, yield or sleep until it takes the event, but must not drop it.
/// - Every stage runs the trivial handler, `PipelineEvent.touch()`, once per
///   event; the last stage then calls `sink.complete(event)`, from any thread,
///   concurrently if it likes.
protocol PipelineUnderTest: AnyObject {
    /// Makes the stages and starts whatever runs them; stage 1 must take
    /// events once this returns. `sink` belongs to this measurement only.
    func start(sink: PipelineSink) throws

    /// Hands one event to stage 1, in submission order. Must not drop it.
    func submit(_ event: PipelineEvent)

    /// The most events the generator gathers for one `submit(contentsOf:)`.
    /// Default 1, which means the generator only calls `submit(_:)`.
    var ingressBatch: Int { get }

    /// Hands 2...`ingressBatch` events to stage 1 at once, in order. The
    /// generator reuses the array: copy what you keep. Default: `submit` each.
    func submit(contentsOf events: [PipelineEvent])

    /// Stops the stages and frees what `start` made. Called once, after every
    /// submitted event has reached the sink; returns when the stages are idle.
    func shutdown()
}

extension PipelineUnderTest {
    var ingressBatch: Int { 1 }

    func submit(contentsOf events: [PipelineEvent]) {
        for event in events { submit(event) }
    }
}

/// One row of the table: a pipeline and how to make a fresh one.
struct PipelineContender {
    /// The row's label, e.g. "DispatchQueue, 4 serial".
    let label: String
    /// Events a Seda stage takes per dequeue; nil for a baseline, which
    /// moves one event at a time.
    let batch: Int?
    /// Whether this row is a baseline: the ratio column compares every row
    /// with the fastest baseline, and the latency rate derives from the
    /// slowest one.
    let isBaseline: Bool
    /// Makes a fresh, unstarted pipeline; called once per measurement, on
    /// the load generator thread.
    let make: () throws -> any PipelineUnderTest
}

/// The event that flows through every pipeline. The load generator
/// allocates one per event inside the timed loop.
///
/// `@unchecked Sendable`: one stage at a time owns an event; the queue that
/// hands it to the next stage orders the accesses.
final class PipelineEvent: @unchecked Sendable {
    /// 0..<count within one measurement; the sink's latency slot.
    let seq: Int
    /// When the open-loop schedule said to send it (`PipelineClock` ns);
    /// 0 in throughput runs, which have no schedule.
    let due: UInt64
    /// Stages that have handled it.
    private(set) var hops = 0

    init(seq: Int, due: UInt64) {
        self.seq = seq
        self.due = due
    }

    /// The trivial handler every stage runs once per event.
    @inline(__always)
    func touch() { hops &+= 1 }
}

/// Where a pipeline's last stage delivers events. It counts completions,
/// notes when the last one arrived and, in latency runs, each event's
/// latency from its due time. Owned by the harness, one per measurement.
///
/// `@unchecked Sendable`: each latency slot is written once, by the thread
/// that completes that event, and read only after `waitForAll()`, which the
/// completion counter (acquire-release) and the semaphore order after it.
final class PipelineSink: @unchecked Sendable {
    let expected: Int
    private let completed = Atomic<Int>(0)
    private let lastCompletion = Atomic<UInt64>(0)
    private let allDone = DispatchSemaphore(value: 0)
    private let latencies: UnsafeMutablePointer<UInt64>?

    init(expected: Int, recordsLatency: Bool) {
        self.expected = expected
        if recordsLatency {
            latencies = .allocate(capacity: expected)
            latencies!.initialize(repeating: 0, count: expected)
        } else {
            latencies = nil
        }
    }

    deinit { latencies?.deallocate() }

    /// Called by the last stage once per event, after its `touch()`; any
    /// thread, concurrently.
    @inline(__always)
    func complete(_ event: PipelineEvent) {
        precondition(event.hops == PipelineBench.stages, "event \(event.seq) passed \(event.hops) stages")
        if let latencies {
            precondition(event.seq >= 0 && event.seq < expected, "event \(event.seq) out of range")
            let now = PipelineClock.now()
            latencies[event.seq] = now > event.due ? now - event.due : 0
        }
        // acquiringAndReleasing: the last completer acquires every other
        // completer's latency write (released by its own increment).
        let n = completed.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue
        precondition(n <= expected, "more completions than events")
        if n == expected {
            lastCompletion.store(PipelineClock.now(), ordering: .relaxed)
            allDone.signal()  // orders everything above before waitForAll's return
        }
    }

    /// Blocks until `expected` events have completed; returns when the last
    /// one did (`PipelineClock` ns). Call once.
    func waitForAll() -> UInt64 {
        allDone.wait()
        return lastCompletion.load(ordering: .relaxed)
    }

    /// The latencies recorded, in nanoseconds. Only after `waitForAll()`.
    func latencyHistogram() -> Histogram<UInt64> {
        var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
        histogram.autoResize = true
        if let latencies {
            for i in 0..<expected { histogram.record(latencies[i]) }
        }
        return histogram
    }
}

/// CLOCK_MONOTONIC in nanoseconds, and the generator's sleeps on it.
enum PipelineClock {
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Sleeps until `deadline` (absolute), or returns at once if it passed.
    static func sleep(until deadline: UInt64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }

    /// Sets the main thread's timer slack (Linux wakes a sleeper up to that
    /// late; the default is 50 µs) through /proc/self/timerslack_ns, which
    /// names the thread-group leader, i.e. the main thread. Returns the old
    /// value, or nil if the file could not be read or written.
    static func setMainThreadTimerSlack(_ ns: UInt64) -> UInt64? {
        let path = "/proc/self/timerslack_ns"
        let reader = open(path, O_RDONLY)
        guard reader >= 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = read(reader, &buffer, buffer.count)
        close(reader)
        guard n > 0, let old = UInt64(String(decoding: buffer[0..<n], as: UTF8.self).filter(\.isNumber)) else {
            return nil
        }
        let writer = open(path, O_WRONLY)  // procfs files cannot pwrite
        guard writer >= 0 else { return nil }
        defer { close(writer) }
        let text = Array("\(ns)\n".utf8)
        guard write(writer, text, text.count) == text.count else { return nil }
        return old
    }
}
