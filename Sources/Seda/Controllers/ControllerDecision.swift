import Glibc
import Logging

/// One change a controller made to a stage: when (the runtime's clock),
/// which stage, which knob, from what to what, and why. The thread governor
/// and the batching controller keep their last decisions
/// (``ThreadGovernor/decisions``, ``BatchController/decisions``) for a
/// profiler or a test to show.
public struct ControllerDecision: Sendable, Equatable, CustomStringConvertible {
    /// What the controller turned.
    public enum Knob: String, Sendable, Equatable {
        /// A dedicated pool's size (``Runtime/setThreads(_:forStage:)``).
        case threads
        /// The largest batch the handler gets (``Runtime/setBatchSize(_:forStage:)``).
        case batchSize
    }

    /// Why the controller turned it. Rates are events per second.
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// Thread governor: the sampled queue was at or above the threshold
        /// and, on its trend over the last interval, would still be at the
        /// next sample.
        case queueAtThreshold(queueLength: Int, threshold: Int)
        /// Thread governor: for `idleFor` (at least the idle timeout) the
        /// pool's handler time fitted in one thread fewer with headroom, and
        /// the queue stayed below the threshold: one thread was idle.
        /// `busyThreads` is the last interval's handler time in threads' worth.
        case idle(for: Duration, busyThreads: Double)
        /// Thread governor (autoMaxDetect): with the queue backlogged
        /// throughout, the thread added last raised throughput from `before`
        /// to only `after`; the pool goes back to `threads` and grows no
        /// further for a while.
        case noThroughputGain(threads: Int, before: Double, after: Double)
        /// Batching controller, first measured window: start looking for the
        /// smallest batch that keeps throughput, going down.
        case firstWindow(rate: Double)
        /// Batching controller: the smoothed throughput at this batch size
        /// beats that of the size it stepped from: step again the same way.
        case throughputRose(from: Double, to: Double)
        /// Batching controller: it is below that of the size it stepped from:
        /// step back.
        case throughputFell(from: Double, to: Double)
        /// Batching controller: it is the same within the tolerance: step
        /// down, to the smallest batch that keeps throughput.
        case throughputHeld(rate: Double)

        public var description: String {
            switch self {
            case .queueAtThreshold(let q, let t):
                "queue \(q) ≥ threshold \(t)"
            case .idle(let d, let busy):
                "one thread idle for \(formatDuration(d)) (\(fixed(busy)) threads busy)"
            case .noThroughputGain(let n, let before, let after):
                "no throughput gain from thread \(n + 1): \(formatRate(before)) → \(formatRate(after)) ev/s; back to \(n)"
            case .firstWindow(let r):
                "first window, \(formatRate(r)) ev/s"
            case .throughputRose(let a, let b):
                "throughput rose \(formatRate(a)) → \(formatRate(b)) ev/s"
            case .throughputFell(let a, let b):
                "throughput fell \(formatRate(a)) → \(formatRate(b)) ev/s"
            case .throughputHeld(let r):
                "throughput held at \(formatRate(r)) ev/s"
            }
        }
    }

    /// When, in nanoseconds on the runtime's clock.
    public var timeNanoseconds: Int64
    public var stage: String
    public var knob: Knob
    public var old: Int
    public var new: Int
    public var reason: Reason

    public init(timeNanoseconds: Int64, stage: String, knob: Knob, old: Int, new: Int, reason: Reason) {
        self.timeNanoseconds = timeNanoseconds
        self.stage = stage
        self.knob = knob
        self.old = old
        self.new = new
        self.reason = reason
    }

    /// For example `stage 'logger' threads 1 → 2: queue 1200 ≥ threshold 1000`.
    public var description: String {
        "stage '\(stage)' \(knob.rawValue) \(old) → \(new): \(reason)"
    }
}

/// The last `limit` decisions, oldest first. Guarded by its owner's lock.
struct DecisionHistory {
    let limit: Int
    private(set) var items: [ControllerDecision] = []

    init(limit: Int) { self.limit = max(1, limit) }

    mutating func append(_ d: ControllerDecision) {
        if items.count == limit { items.removeFirst() }
        items.append(d)
    }
}

func formatDuration(_ d: Duration) -> String {
    let (s, a) = d.components
    return formatNanos(UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, a) / 1_000_000_000))
}

/// Whole nanoseconds of `d`, saturating.
func controllerNanoseconds(_ d: Duration) -> Int64 {
    let (s, a) = d.components
    return s >= Int64.max / 1_000_000_000 ? Int64.max : s * 1_000_000_000 + a / 1_000_000_000
}

/// A controller's own thread: calls `body` every `interval` (on the monotonic
/// clock, on a fixed schedule; a late tick does not shift the ones after it,
/// missed ones are skipped) until ``stop()``. It sleeps on a pthread
/// condition variable, so ``stop()`` wakes it at once.
/// Starts and stops one controller's ticking thread: at most one at a time.
final class ControllerLoop: Sendable {
    private let thread = Lock<ControllerThread?>(nil)

    /// Starts ticking every `interval` on a thread named `name`, unless a
    /// thread is running already (made under the lock, so two starts cannot
    /// both make one). Returns whether it started one.
    func start(name: String, interval: Duration, tick: @escaping @Sendable () -> Void) throws(SedaError) -> Bool {
        let result: Result<Bool, SedaError> = thread.withLock { t in
            guard t == nil else { return .success(false) }
            do throws(SedaError) {
                t = try ControllerThread(name: name, interval: interval, body: tick)
                return .success(true)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Stops the thread and waits for it. Idempotent.
    func stop() {
        let t = thread.withLock { t in defer { t = nil }; return t }
        t?.stop()
    }
}

final class ControllerThread: @unchecked Sendable {
    // @unchecked: `stopping` and `joined` are guarded by `mutex`; `tid` is
    // written once, in init, and read only by stop() (the owner publishes
    // this object through a lock); the rest is immutable.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var stopping = false
    private var joined = false
    private var tid = pthread_t()
    private let intervalNanoseconds: Int64
    private let body: @Sendable () -> Void

    private let name: String

    /// Starts the thread, named `name` (at most 15 bytes are kept).
    init(name: String, interval: Duration, body: @escaping @Sendable () -> Void) throws(SedaError) {
        self.name = name
        intervalNanoseconds = max(1, controllerNanoseconds(interval))
        self.body = body
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(cond, &attr) == 0, "pthread_cond_init failed")
        pthread_condattr_destroy(&attr)

        let ctx = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&tid, nil, { ctx in
            let me = Unmanaged<ControllerThread>.fromOpaque(ctx!).takeRetainedValue()
            me.run()
            return nil
        }, ctx)
        if rc != 0 {
            Unmanaged<ControllerThread>.fromOpaque(ctx).release()
            joined = true
            throw SedaError(code: -rc)
        }
    }

    deinit {
        pthread_cond_destroy(cond)
        cond.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private static func monotonicNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Names the calling thread (pthread_setname_np is not imported without
    /// _GNU_SOURCE; this is what it does for the calling thread).
    private func nameThisThread() {
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = write(fd, bytes, bytes.count)
        close(fd)
    }

    private func run() {
        nameThisThread()
        var next = Self.monotonicNow() + intervalNanoseconds
        while true {
            pthread_mutex_lock(mutex)
            while !stopping, Self.monotonicNow() < next {
                var ts = timespec(tv_sec: Int(next / 1_000_000_000), tv_nsec: Int(next % 1_000_000_000))
                _ = pthread_cond_timedwait(cond, mutex, &ts)
            }
            let stop = stopping
            pthread_mutex_unlock(mutex)
            if stop { return }
            body()
            next += intervalNanoseconds
            let now = Self.monotonicNow()
            if next <= now { // ran late: skip the missed ticks, keep the phase
                next += ((now - next) / intervalNanoseconds + 1) * intervalNanoseconds
            }
        }
    }

    /// Stops the thread and waits for it (for at most the tick it may be
    /// running). Idempotent. From the thread's own tick it does not wait.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        let alreadyJoined = joined
        joined = true
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
        if alreadyJoined { return }
        if pthread_equal(pthread_self(), tid) != 0 {
            pthread_detach(tid) // called from body(): the loop ends after it returns
        } else {
            pthread_join(tid, nil)
        }
    }
}

/// Turns a controller's knob and, if the runtime took the new value, records
/// and logs the decision (debug); if it refused, logs a warning and returns
/// nil. The one path both controllers' ticks take.
func applyDecision(_ d: ControllerDecision, history: inout DecisionHistory, logger: Logger,
                   extra: Logger.Metadata = [:], set: () throws(SedaError) -> Void) -> ControllerDecision? {
    do throws(SedaError) {
        try set()
    } catch {
        logger.warning("controller could not set \(d.knob.rawValue)", metadata: [
            "stage": "\(d.stage)", "value": "\(d.new)", "error": "\(error)",
        ])
        return nil
    }
    history.append(d)
    logger.debug("\(d.knob.rawValue) \(d.old) → \(d.new)",
                 metadata: extra.merging(["stage": "\(d.stage)", "reason": "\(d.reason)"]) { a, _ in a })
    return d
}
