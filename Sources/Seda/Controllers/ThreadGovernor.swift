import Logging

/// Sandstorm's thread governor (its thread pool size controller): sizes the
/// pools of dedicated stages from what their statistics show, so that a
/// bottleneck stage gets the threads its load needs without anyone knowing
/// the load in advance.
///
/// ## What one sample does
///
/// Every ``interval`` (Sandstorm's `threadPool.sizeController.delay`, 2 s by
/// default) the governor takes a ``Runtime/snapshot()`` and, for each
/// governed stage, looks at the queue length, the events processed and the
/// handler time since the previous sample. At most one change per stage per
/// sample:
///
/// 1. **Grow.** When the queue is at or above the stage's threshold and, on
///    its trend over the last interval, would still be at the next sample
///    (`2·now − previous ≥ threshold`: a backlog already draining fast is
///    left to drain), one thread is added, up to the stage's `maxThreads`.
/// 2. **Shrink.** The governor sees per-stage statistics only, not threads.
///    A thread counts as *idle* when the pool's handler time over an
///    interval would have fitted in one thread fewer, each at most
///    ``surplusUtilization`` (80 %) busy, and the queue was below the
///    threshold at the sample. (A stage that processed nothing has handler
///    time zero: every thread above `minThreads` is idle.) When that has held
///    for every interval over at least the stage's `idleTimeThreshold`, one
///    thread is removed (down to `minThreads`) and the idle clock restarts.
///    The 80 % headroom keeps a pool from shrinking to the point where the
///    queue would grow again and oscillate. A handler still running at the
///    sample counts in the interval in which it returns, so a stage whose
///    every thread is blocked in one long call looks idle; removing a thread
///    then only takes effect when that call returns.
/// 3. **Find the best maximum** (``autoMaxDetect``). When a thread is added
///    while the queue stayed backlogged through the interval (so throughput
///    measured the pool's capacity, not the offered load), the governor
///    compares the next interval's throughput, still backlogged, with the
///    previous one. If the new thread raised it by less than half of the
///    ideal gain (`1/n` for a pool of `n`), it is removed again and the pool
///    grows no further for ``autoMaxHoldSamples`` samples; then the governor
///    probes again, as the load may have changed. (Sandstorm compared
///    smoothed throughput every 10 samples and jumped down at random.)
///
/// Every change is logged at debug level and kept in ``decisions``.
///
/// ## Driving it
///
/// ``start()`` runs the sampling on a thread of the governor's own
/// (`seda-governor`) that sleeps between samples on the real monotonic
/// clock; ``stop()`` ends it. Tests instead call ``tick()`` after moving a
/// runtime's manual clock (``SedaClock/manual(startingAt:)``): a sample
/// reads the runtime's clock, so the outcome is deterministic.
///
/// Thread rules: every method may be called from any thread; samples are
/// serialised. ``stop()`` blocks for at most the sample in progress.
public final class ThreadGovernor: @unchecked Sendable {
    // @unchecked: the mutable state is in `state` and `loop` (pthread locks);
    // everything else is immutable.

    /// A pool is shrunk only if one thread fewer would each have been at most
    /// this busy over the last interval.
    public static let surplusUtilization = 0.8

    /// After ``autoMaxDetect`` backs off, the pool grows no further for this
    /// many samples.
    public static let autoMaxHoldSamples = 10

    /// The runtime whose stages are governed.
    public let runtime: Runtime
    /// Time between samples (`threadPool.sizeController.delay`).
    public let interval: Duration
    /// Back off a thread that does not raise throughput.
    public let autoMaxDetect: Bool
    /// Settings for stages governed without their own.
    public let defaults: GovernorSettings

    private let logger: Logger
    private let state: Lock<State>
    private let loop = ControllerLoop()

    private struct State {
        var order: [String] = []
        var stages: [String: GovernorPolicy] = [:]
        var history: DecisionHistory
    }

    /// A governor that governs no stage yet (see ``govern(_:settings:)``).
    /// - Parameters:
    ///   - runtime: the runtime whose stages it governs (kept alive by it).
    ///   - settings: `delay` is the sampling interval and `autoMaxDetect`
    ///     applies to every stage; the rest are the defaults of
    ///     ``govern(_:settings:)``. `enabled` is not read.
    ///   - logger: where decisions go at debug level (default: the runtime's,
    ///     with `controller: governor` metadata).
    ///   - historyLimit: how many decisions ``decisions`` keeps.
    public init(
        runtime: Runtime, settings: GovernorSettings = GovernorSettings(),
        logger: Logger? = nil, historyLimit: Int = 256
    ) throws(SedaError) {
        guard settings.delay > .zero else {
            throw .invalidConfiguration("thread governor: delay \(settings.delay) must be positive")
        }
        try Self.validate(settings, stage: nil)
        self.runtime = runtime
        interval = settings.delay
        autoMaxDetect = settings.autoMaxDetect
        defaults = settings
        var log = logger ?? runtime.logger
        log[metadataKey: "controller"] = "governor"
        self.logger = log
        state = Lock(State(history: DecisionHistory(limit: historyLimit)))
    }

    deinit { loop.stop() }

    private static func validate(_ s: GovernorSettings, stage: String?) throws(SedaError) {
        let at = stage.map { "thread governor, stage '\($0)'" } ?? "thread governor"
        guard s.threshold >= 1 else {
            throw .invalidConfiguration("\(at): threshold \(s.threshold) must be at least 1")
        }
        guard s.minThreads >= 1 else {
            throw .invalidConfiguration("\(at): minThreads \(s.minThreads) must be at least 1")
        }
        guard s.idleTimeThreshold > .zero else {
            throw .invalidConfiguration("\(at): idleTimeThreshold \(s.idleTimeThreshold) must be positive")
        }
    }

    /// Governs stage `name` with `settings` (`threshold`, `minThreads`,
    /// `idleTimeThreshold`; the others are not read), or ``defaults``; its
    /// pool's upper bound is the stage's `maxThreads`. Replaces any earlier
    /// settings for the stage. Throws ``SedaError/noSuchStage(_:)``,
    /// ``SedaError/notSupported`` for a stage on the shared threads, and
    /// ``SedaError/invalidConfiguration(_:)`` for bad settings or
    /// `minThreads` above `maxThreads`.
    public func govern(_ name: String, settings: GovernorSettings? = nil) throws(SedaError) {
        let s = settings ?? defaults
        try Self.validate(s, stage: name)
        guard let options = runtime.registeredOptions(name) else { throw .noSuchStage(name) }
        guard case .dedicated(let t, let m) = options.threadManager else { throw .notSupported }
        let maxThreads = m ?? t
        guard s.minThreads <= maxThreads else {
            throw .invalidConfiguration(
                "thread governor, stage '\(name)': minThreads \(s.minThreads) is above its maxThreads \(maxThreads)")
        }
        state.withLock { st in
            if st.stages[name] == nil { st.order.append(name) }
            st.stages[name] = GovernorPolicy(settings: s, autoMaxDetect: autoMaxDetect)
        }
        logger.debug(
            "governing stage",
            metadata: [
                "stage": "\(name)", "threshold": "\(s.threshold)", "minThreads": "\(s.minThreads)",
                "maxThreads": "\(maxThreads)", "idleTimeThreshold": "\(s.idleTimeThreshold)",
            ])
    }

    /// Stops governing stage `name`; its pool keeps its size.
    public func stopGoverning(_ name: String) {
        state.withLock { st in
            if st.stages.removeValue(forKey: name) != nil { st.order.removeAll { $0 == name } }
        }
    }

    /// The governed stages, in the order they were added.
    public var governedStages: [String] { state.withLock { $0.order } }

    /// The last decisions (up to the history limit), oldest first.
    public var decisions: [ControllerDecision] { state.withLock { $0.history.items } }

    /// Takes one sample now (on the runtime's clock) and applies what it
    /// decides; returns the decisions. A governed stage that is gone is
    /// skipped (and governed again if a stage of that name comes back).
    @discardableResult
    public func tick() -> [ControllerDecision] {
        let snap = runtime.snapshot()
        return state.withLock { st in
            var made: [ControllerDecision] = []
            for name in st.order {
                guard let s = snap[stage: name], let options = runtime.registeredOptions(name),
                    case .dedicated(let t, let m) = options.threadManager
                else { continue }
                let sample = GovernorSample(
                    time: snap.takenAtNanoseconds, queueLength: Int(s.queueLength),
                    processed: s.processed, handlerNanoseconds: s.handlerNanoseconds,
                    threads: s.concurrency)
                guard let change = st.stages[name]!.decide(sample, maxThreads: m ?? t) else { continue }
                let d = ControllerDecision(
                    timeNanoseconds: sample.time, stage: name, knob: .threads,
                    old: sample.threads, new: change.threads, reason: change.reason)
                if let d = applyDecision(
                    d, history: &st.history, logger: logger,
                    extra: ["queueLength": "\(sample.queueLength)"],
                    set: { () throws(SedaError) in
                        try runtime.setThreads(change.threads, forStage: name)
                    })
                {
                    made.append(d)
                }
            }
            return made
        }
    }

    /// Samples every ``interval`` on a thread of the governor's own
    /// (`seda-governor`) until ``stop()`` (or the governor's deinit). Meant
    /// for the real clock: with a manual one, call ``tick()`` instead. Does
    /// nothing if already started.
    public func start() throws(SedaError) {
        let started = try loop.start(name: "seda-governor", interval: interval) { [weak self] in
            self?.tick()
        }
        if started { logger.debug("thread governor started", metadata: ["interval": "\(interval)"]) }
    }

    /// Stops the sampling thread and waits for it. Idempotent.
    public func stop() {
        loop.stop()
    }
}

/// The thread governor's settings for a dedicated stage: Sandstorm's thread
/// pool size controller (`threadPool.minThreads`, `threadPool.sizeController.*`).
/// Accepted and validated; the controllers issue will use them.
public struct GovernorSettings: Sendable, Equatable {
    public var enabled = false
    /// The pool never shrinks below this.
    public var minThreads = 1
    /// A queue at least this long adds a thread.
    public var threshold = 1000
    /// A thread idle this long goes away.
    public var idleTimeThreshold: Duration = .milliseconds(1000)
    /// How often the governor samples (one value for the whole runtime).
    public var delay: Duration = .milliseconds(2000)
    /// Look for the pool size with the best throughput (one value for the whole runtime).
    public var autoMaxDetect = false

    public init() {}
}

// MARK: - The decision logic, apart from the runtime

/// What the governor reads of one stage at one sample.
struct GovernorSample: Equatable {
    /// Nanoseconds on the runtime's clock.
    var time: Int64
    var queueLength: Int
    var processed: UInt64
    var handlerNanoseconds: UInt64
    /// The pool's size now (its target: a shrinking pool's surplus threads
    /// finish their batch first).
    var threads: Int
}

/// The governor's rules for one stage (see ``ThreadGovernor``), as a value
/// fed one sample at a time, so that tests can drive it with made-up samples.
struct GovernorPolicy {
    struct Change: Equatable {
        var threads: Int
        var reason: ControllerDecision.Reason
    }

    let settings: GovernorSettings
    let autoMaxDetect: Bool
    private(set) var last: GovernorSample?
    /// Start of the current run of intervals with an idle thread.
    private var idleSince: Int64?
    /// autoMaxDetect: the pool size and backlogged throughput before the
    /// last thread was added.
    private var probe: (threads: Int, rate: Double)?
    /// autoMaxDetect: the size found best, and for how many more samples.
    private(set) var learnedMax: Int?
    private var learnedMaxSamplesLeft = 0

    init(settings: GovernorSettings, autoMaxDetect: Bool) {
        self.settings = settings
        self.autoMaxDetect = autoMaxDetect
    }

    mutating func decide(_ s: GovernorSample, maxThreads: Int) -> Change? {
        let prev = last
        // Two ticks at once may hand their snapshots over in either order.
        if let p = prev, s.time < p.time { return nil }
        last = s
        let n = s.threads
        let threshold = settings.threshold

        if learnedMax != nil {
            learnedMaxSamplesLeft -= 1
            if learnedMaxSamplesLeft <= 0 { learnedMax = nil }
        }

        // The interval since the previous sample, if there is a usable one:
        // the clock moved and the counters did not restart (a stage
        // destroyed and added again under the same name).
        var interval: (rate: Double, busyThreads: Double)?
        if let p = prev, s.time > p.time {
            if s.processed >= p.processed, s.handlerNanoseconds >= p.handlerNanoseconds {
                let dt = Double(s.time - p.time)
                interval = (
                    Double(s.processed - p.processed) * 1e9 / dt,
                    Double(s.handlerNanoseconds - p.handlerNanoseconds) / dt
                )
            } else {  // the counters restarted: start over
                idleSince = nil
                probe = nil
            }
        }
        let backlogged = (prev?.queueLength ?? 0) > 0 && s.queueLength > 0

        // autoMaxDetect: judge the thread added at the previous sample.
        if let p = probe, let iv = interval {
            probe = nil
            if backlogged, n == p.threads + 1, iv.rate < p.rate * (1 + 0.5 / Double(p.threads)) {
                learnedMax = p.threads
                learnedMaxSamplesLeft = ThreadGovernor.autoMaxHoldSamples
                idleSince = nil
                return Change(
                    threads: p.threads,
                    reason: .noThroughputGain(threads: p.threads, before: p.rate, after: iv.rate))
            }
        }

        // Grow.
        if s.queueLength >= threshold {
            idleSince = nil
            let projected = prev.map { 2 * s.queueLength - $0.queueLength } ?? s.queueLength
            let cap = min(maxThreads, learnedMax ?? Int.max)
            guard projected >= threshold, n < cap else { return nil }
            if autoMaxDetect, backlogged, let iv = interval { probe = (n, iv.rate) }
            return Change(threads: n + 1, reason: .queueAtThreshold(queueLength: s.queueLength, threshold: threshold))
        }

        // Shrink a thread idle for the idle timeout.
        guard let iv = interval, let p = prev, n > settings.minThreads,
            iv.busyThreads <= Double(n - 1) * ThreadGovernor.surplusUtilization
        else {
            idleSince = nil
            return nil
        }
        let since = idleSince ?? p.time
        idleSince = since
        guard s.time - since >= settings.idleTimeThreshold.saturatingNanoseconds else { return nil }
        idleSince = s.time
        return Change(threads: n - 1, reason: .idle(for: .nanoseconds(s.time - since), busyThreads: iv.busyThreads))
    }
}

extension Runtime {
    /// The options stage `name` was added with, if it is live.
    package func registeredOptions(_ name: String) -> StageOptions? {
        registry.withLock { $0[name]?.options }
    }
}
