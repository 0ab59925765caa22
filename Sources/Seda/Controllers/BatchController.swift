import Logging

/// Sandstorm's batching controller (its `AggThrottle`): varies how many
/// events a stage's handler gets per call, between `minBatch` and `maxBatch`,
/// looking for the smallest batch that keeps throughput high. Large batches
/// amortise per-call costs; small ones cut the time an event waits behind
/// the rest of its batch and share threads more fairly.
///
/// ## The algorithm: a hill climb on smoothed throughput
///
/// Every window (`batchController.recalcWindow`) the controller measures the
/// stage's throughput `r` (events processed per second of the runtime's
/// clock) at its current batch size `b`, and folds it into a smoothed
/// estimate for that size: `e[b] = c·e[b] + (1 − c)·r` (the first
/// measurement at a size is taken as it is), `c` being the stage's
/// `smoothConst` (0.7: the old estimate weighs 70 %). It compares `e[b]`
/// with the estimate at the size it stepped from, `e[p]`, and steps:
///
/// - `e[b] > e[p]·(1 + tolerance)`: the last step raised throughput: again
///   the same way;
/// - `e[b] < e[p]·(1 − tolerance)`: it lowered throughput: back towards `p`;
/// - otherwise throughput held: down, as AggThrottle prefers the smaller of
///   two batches that do equally well (less waiting behind the rest of a
///   batch, fairer sharing of threads).
///
/// The first window steps down from where the stage is (AggThrottle starts
/// at the largest batch). A step multiplies or divides the batch by
/// ``stepFactor`` (1.25, at least ±1), clamped to `[minBatch, maxBatch]`; a
/// step the bounds stop is not taken. A window in which the stage processed
/// nothing changes nothing (no evidence either way). Under a load below the
/// stage's capacity throughput is the offered load whatever the batch, so
/// the batch drifts down to `minBatch`; near saturation it settles around
/// the smallest batch whose throughput is within the tolerance of larger
/// ones, moving a step either side of it. Keeping an estimate per size
/// (rather than one running average) means a step is judged against what
/// the previous size did, not against a lagging mix of both. A change in
/// the offered load during a window is indistinguishable from the effect of
/// a step; the estimates of sizes visited long ago may be stale until the
/// climb visits them again. If someone else changes the batch size, the
/// climb starts over from there.
///
/// Every change is logged at debug level and kept in ``decisions``.
///
/// ## Driving it
///
/// As ``ThreadGovernor``: ``start()`` runs a thread of its own
/// (`seda-batching`) that ticks every ``interval``; tests call ``tick()``
/// after moving a manual clock. A stage is measured every `k` ticks, `k`
/// being its `recalcWindow` divided by ``interval`` (rounded, at least 1).
///
/// Thread rules: every method may be called from any thread; ticks are
/// serialised. ``stop()`` blocks for at most the tick in progress.
public final class BatchController: @unchecked Sendable {
    // @unchecked: the mutable state is in `state` and `loop` (pthread locks);
    // everything else is immutable.

    /// How much one step multiplies or divides the batch size.
    public static let stepFactor = 1.25

    /// The runtime whose stages are controlled.
    public let runtime: Runtime
    /// Time between ticks.
    public let interval: Duration
    /// The relative change of smoothed throughput that counts as a rise or a fall.
    public let tolerance: Double

    private let logger: Logger
    private let state: Lock<State>
    private let loop = ControllerLoop()

    private struct Controlled {
        var policy: BatchPolicy
        var everyTicks: Int
        var ticksLeft: Int
    }

    private struct State {
        var order: [String] = []
        var stages: [String: Controlled] = [:]
        var history: DecisionHistory
    }

    /// A controller that controls no stage yet (see ``control(_:settings:)``).
    /// - Parameters:
    ///   - runtime: the runtime whose stages it controls (kept alive by it).
    ///   - interval: time between ticks; a stage whose `recalcWindow` is
    ///     longer is measured every few ticks.
    ///   - tolerance: the relative change in smoothed throughput that counts
    ///     as a rise or a fall (0 ..< 1).
    ///   - logger: where decisions go at debug level (default: the runtime's,
    ///     with `controller: batching` metadata).
    ///   - historyLimit: how many decisions ``decisions`` keeps.
    public init(
        runtime: Runtime, interval: Duration = .seconds(1), tolerance: Double = 0.05,
        logger: Logger? = nil, historyLimit: Int = 256
    ) throws(SedaError) {
        guard interval > .zero else {
            throw .invalidConfiguration("batching controller: interval \(interval) must be positive")
        }
        guard tolerance >= 0, tolerance < 1 else {
            throw .invalidConfiguration("batching controller: tolerance \(tolerance) is not in 0..<1")
        }
        self.runtime = runtime
        self.interval = interval
        self.tolerance = tolerance
        var log = logger ?? runtime.logger
        log[metadataKey: "controller"] = "batching"
        self.logger = log
        state = Lock(State(history: DecisionHistory(limit: historyLimit)))
    }

    deinit { loop.stop() }

    /// Controls stage `name` (any thread manager) with `settings`
    /// (`minBatch`, `maxBatch`, `recalcWindow`, `smoothConst`; `enabled` is
    /// not read). Replaces any earlier settings for the stage. Throws
    /// ``SedaError/noSuchStage(_:)`` and ``SedaError/invalidConfiguration(_:)``.
    public func control(_ name: String, settings: BatchControllerSettings) throws(SedaError) {
        let at = "batching controller, stage '\(name)'"
        guard settings.minBatch >= 1, settings.minBatch <= settings.maxBatch,
            settings.maxBatch <= SedaLimits.batchSize
        else {
            throw .invalidConfiguration(
                "\(at): expected 1 ≤ minBatch (\(settings.minBatch)) ≤ maxBatch (\(settings.maxBatch)) "
                    + "≤ \(SedaLimits.batchSize)")
        }
        guard settings.smoothConst >= 0, settings.smoothConst < 1 else {
            throw .invalidConfiguration("\(at): smoothConst \(settings.smoothConst) is not in 0..<1")
        }
        guard settings.recalcWindow > .zero else {
            throw .invalidConfiguration("\(at): recalcWindow \(settings.recalcWindow) must be positive")
        }
        guard runtime.registeredOptions(name) != nil else { throw .noSuchStage(name) }
        let ratio = Double(settings.recalcWindow.saturatingNanoseconds) / Double(interval.saturatingNanoseconds)
        let every = max(1, Int(ratio.rounded()))
        state.withLock { st in
            if st.stages[name] == nil { st.order.append(name) }
            st.stages[name] = Controlled(
                policy: BatchPolicy(settings: settings, tolerance: tolerance),
                everyTicks: every, ticksLeft: 0)
        }
        logger.debug(
            "controlling stage",
            metadata: [
                "stage": "\(name)", "minBatch": "\(settings.minBatch)", "maxBatch": "\(settings.maxBatch)",
                "recalcWindow": "\(settings.recalcWindow)", "smoothConst": "\(settings.smoothConst)",
            ])
    }

    /// Stops controlling stage `name`; its batch size stays where it is.
    public func stopControlling(_ name: String) {
        state.withLock { st in
            if st.stages.removeValue(forKey: name) != nil { st.order.removeAll { $0 == name } }
        }
    }

    /// The controlled stages, in the order they were added.
    public var controlledStages: [String] { state.withLock { $0.order } }

    /// The last decisions (up to the history limit), oldest first.
    public var decisions: [ControllerDecision] { state.withLock { $0.history.items } }

    /// One tick now (on the runtime's clock): measures each stage whose
    /// window is due and applies what it decides; returns the decisions.
    @discardableResult
    public func tick() -> [ControllerDecision] {
        let snap = runtime.snapshot()
        return state.withLock { st in
            var made: [ControllerDecision] = []
            for name in st.order {
                guard var c = st.stages[name] else { continue }
                defer { st.stages[name] = c }
                c.ticksLeft -= 1
                guard c.ticksLeft <= 0, let s = snap[stage: name] else { continue }
                c.ticksLeft = c.everyTicks
                let sample = BatchSample(time: snap.takenAtNanoseconds, processed: s.processed, batchSize: s.batchSize)
                guard let change = c.policy.decide(sample) else { continue }
                let d = ControllerDecision(
                    timeNanoseconds: sample.time, stage: name, knob: .batchSize,
                    old: sample.batchSize, new: change.batchSize, reason: change.reason)
                if let d = applyDecision(
                    d, history: &st.history, logger: logger,
                    set: { () throws(SedaError) in
                        try runtime.setBatchSize(change.batchSize, forStage: name)
                    })
                {
                    made.append(d)
                }
            }
            return made
        }
    }

    /// Ticks every ``interval`` on a thread of the controller's own
    /// (`seda-batching`) until ``stop()`` (or the controller's deinit). Does
    /// nothing if already started.
    public func start() throws(SedaError) {
        let started = try loop.start(name: "seda-batching", interval: interval) { [weak self] in
            self?.tick()
        }
        if started { logger.debug("batching controller started", metadata: ["interval": "\(interval)"]) }
    }

    /// Stops the ticking thread and waits for it. Idempotent.
    public func stop() {
        loop.stop()
    }
}

/// The batch controller's settings (Sandstorm's `batchController.*`): it
/// would vary the batch between `minBatch` and `maxBatch` (the stage's
/// `batchSize`). Accepted and validated; the controllers issue will use them.
public struct BatchControllerSettings: Sendable, Equatable {
    public var enabled = false
    public var minBatch = 1
    public var maxBatch: Int
    public var recalcWindow: Duration = .milliseconds(1000)
    /// The weight of the old throughput in the running average, in [0, 1).
    public var smoothConst = 0.7

    public init(maxBatch: Int) { self.maxBatch = maxBatch }
}

// MARK: - The decision logic, apart from the runtime

/// What the batching controller reads of one stage at the end of a window.
struct BatchSample: Equatable {
    /// Nanoseconds on the runtime's clock.
    var time: Int64
    var processed: UInt64
    var batchSize: Int
}

/// The batching controller's hill climb for one stage (see
/// ``BatchController``), fed one window at a time.
struct BatchPolicy {
    struct Change: Equatable {
        var batchSize: Int
        var reason: ControllerDecision.Reason
    }

    let settings: BatchControllerSettings
    let tolerance: Double
    private var last: BatchSample?
    /// The smoothed throughput measured at each batch size visited.
    private(set) var estimates: [Int: Double] = [:]
    /// The size the climb stepped from to reach the current one.
    private var from: Int?
    /// The size in effect since the previous sample (set by the climb then,
    /// or found there).
    private var inEffect: Int?

    init(settings: BatchControllerSettings, tolerance: Double) {
        self.settings = settings
        self.tolerance = tolerance
    }

    mutating func decide(_ s: BatchSample) -> Change? {
        let prev = last
        // Two ticks at once may hand their snapshots over in either order.
        if let p = prev, s.time < p.time { return nil }
        last = s
        let b = s.batchSize
        let expected = inEffect
        inEffect = b
        guard let p = prev, s.time > p.time else { return nil }
        guard expected == b else {  // someone else changed it: start from here
            from = nil
            return nil
        }
        guard s.processed >= p.processed else {  // the counters restarted: start over
            estimates = [:]
            from = nil
            return nil
        }
        guard s.processed > p.processed else { return nil }  // idle: no evidence
        let rate = Double(s.processed - p.processed) * 1e9 / Double(s.time - p.time)
        let c = settings.smoothConst
        let e = estimates[b].map { c * $0 + (1 - c) * rate } ?? rate
        estimates[b] = e

        let up: Bool
        let reason: ControllerDecision.Reason
        if let f = from, let ef = estimates[f] {
            if e > ef * (1 + tolerance) {
                up = b > f
                reason = .throughputRose(from: ef, to: e)
            } else if e < ef * (1 - tolerance) {
                up = f > b
                reason = .throughputFell(from: ef, to: e)
            } else {
                up = false
                reason = .throughputHeld(rate: e)
            }
        } else {
            up = false
            reason = .firstWindow(rate: e)
        }
        let target = step(b, up: up)
        guard target != b else { return nil }
        from = b
        inEffect = target
        return Change(batchSize: target, reason: reason)
    }

    /// One step from `b`, clamped to the bounds.
    func step(_ b: Int, up: Bool) -> Int {
        let f = BatchController.stepFactor
        let next = up ? max(b + 1, Int((Double(b) * f).rounded())) : min(b - 1, Int((Double(b) / f).rounded()))
        return min(settings.maxBatch, max(settings.minBatch, next))
    }
}
