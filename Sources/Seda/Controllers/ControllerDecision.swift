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
    formatNanos(UInt64(max(0, d.saturatingNanoseconds)))
}

/// Turns a controller's knob and, if the runtime took the new value, records
/// and logs the decision (debug); if it refused, logs a warning and returns
/// nil. The one path both controllers' ticks take.
func applyDecision(
    _ d: ControllerDecision, history: inout DecisionHistory, logger: Logger,
    extra: Logger.Metadata = [:], set: () throws(SedaError) -> Void
) -> ControllerDecision? {
    do throws(SedaError) {
        try set()
    } catch {
        logger.warning(
            "controller could not set \(d.knob.rawValue)",
            metadata: [
                "stage": "\(d.stage)", "value": "\(d.new)", "error": "\(error)",
            ])
        return nil
    }
    history.append(d)
    logger.debug(
        "\(d.knob.rawValue) \(d.old) → \(d.new)",
        metadata: extra.merging(["stage": "\(d.stage)", "reason": "\(d.reason)"]) { a, _ in a })
    return d
}
