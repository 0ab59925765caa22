import Logging
import Synchronization

/// How a response-time controller turns its measurements into an admission
/// rate. Both laws read the same window (see ``ResponseTimeController``) and
/// drive the same token bucket; they differ in how far they move it.
public enum ResponseTimeControlLaw: Sendable, Equatable {
    /// Seda's default: a proportional controller on the *queue*, which is
    /// the only part of the response time admission can change, steering
    /// the p90 to `setpoint × target`.
    ///
    /// By Little's law a stage that completes `X` events/s and whose latency
    /// is `e` seconds away from the setpoint holds about `e·X` events too
    /// many (or too few) in its queue. Each update therefore sets the rate
    /// around the throughput `X` it just measured, from two latencies: the
    /// window's p90 (smoothed) and the *present* one, the wait the queue
    /// implies now (`queue ÷ max(X, c)`, `c` the service capacity below:
    /// a queue drains with every thread busy, not at the average of a
    /// window the stage partly idled through) plus the window's service part, which leads
    /// the measured p90 (that is the latency of events enqueued a p90 ago).
    /// `room` is the setpoint minus the larger of the two.
    ///
    /// - over the setpoint, with events queueing: `min(rate, X) × (1 − excess/τ)`,
    ///   where `excess` is the overshoot but no more than the queue's present
    ///   wait: once the queue has drained there is nothing left to cut. At
    ///   most 90% is cut per update;
    /// - under the setpoint, while the bucket refuses events: `X × (1 + room/τ)`,
    ///   filling the room with queue at the same pace; when nothing queues
    ///   (the stage has idle threads) at least `probe` more per update, but
    ///   never more than `room` worth of queue per update, and straight back
    ///   to 95% of the throughput last measured while saturated. In both
    ///   cases at least halfway from `X` to the capacity the window's
    ///   handler time implies (threads ÷ handler time per event): a stage
    ///   below it has idle threads and nothing to queue (a queueing delay
    ///   there is a wake-up's latency), so the climb takes a few windows,
    ///   not one small step per window (at 3% of a 1 ms stage's capacity the
    ///   `room` bound alone allowed ~1% a second: seda-httpd's `/bottleneck`
    ///   sat at ~100 of 1,000 req/s);
    /// - over the setpoint but with the queue already drained: the rate
    ///   follows the throughput the stage just showed while draining it;
    /// - otherwise (nobody refused, or no queue to blame) the rate is held.
    ///
    /// `τ = drainUpdates × window` (a full window at this throughput): an
    /// excess queue decays with a time constant of three windows. With one
    /// window the loop overshoots: when the capacity halved (in a simulation
    /// and in `seda-bench overload`) it cut the rate well below the new
    /// capacity and lost 20–40% of the goodput for a second or two; with
    /// three the dip stays near 10%, for a slightly slower drain. The setpoint leaves
    /// 20% of the target for the one window of queue a probe can build
    /// before it is seen. The p90 is smoothed as a *peak* EWMA: a rise is
    /// taken at once (a latency spike is a queue that grows every window it
    /// is ignored), a fall is averaged with weight ½, and forgotten outright
    /// once a window is under the setpoint with nothing queued.
    ///
    /// Sandstorm's constants (+0.5 events/s per update, ÷2 over 1.2× target)
    /// are absolute: after an overload the smoothed p90 stays high for
    /// several windows, each halving the rate, and the climb back takes one
    /// window per 0.5 events/s (in `seda-bench overload`, a 400 events/s
    /// stage sits at a few events/s for minutes). Every step here is
    /// proportional to the stage's own throughput instead, so the loop
    /// converges in a few windows whatever the capacity.
    ///
    /// While the bucket never refuses, the rate may sit far above the
    /// throughput; once the stage has been seen saturated the rate is capped
    /// at `max(2·X, 1.25 × that capacity)` (the capacity from the handler
    /// time, as above: the throughput of a window the stage partly idled
    /// through, after a burst, is no capacity), so a sudden flood is let in at
    /// most at that rate until the next update. An update also comes early,
    /// after a fifth of a window, when the queue alone implies a wait over
    /// the setpoint.
    case gradient(setpoint: Double = 0.8, drainUpdates: Double = 3, probe: Double = 0.1)

    /// Sandstorm's direct controller (Welsh & Culler 2003): the p90 smoothed
    /// by an EWMA (`smoothing` is the old value's weight); above
    /// `highWater × target` the rate is divided by `decreaseFactor`, below
    /// `lowWater × target` it grows by `increase` events/s.
    case aimd(
        increase: Double, decreaseFactor: Double, lowWater: Double = 0.9, highWater: Double = 1.2,
        smoothing: Double = 0.7)

    /// Sandstorm's constants: +0.5 events/s, ÷2, watermarks 0.9 and 1.2.
    public static let sandstorm = ResponseTimeControlLaw.aimd(increase: 0.5, decreaseFactor: 2)
}

/// A response-time controller's settings.
public struct ResponseTimeControllerOptions: Sendable, Equatable {
    /// The 90th-percentile response time to keep the stage near.
    public var target: Duration
    public var law: ResponseTimeControlLaw = .gradient()
    /// The rate before the first update; `.infinity` admits everything
    /// until the controller has measured the stage.
    public var initialRate: Double = .infinity
    /// The rate never goes below this (> 0: a stage that admits nothing
    /// yields no measurement to recover from).
    public var minRate: Double = 1
    public var maxRate: Double = .infinity
    /// How far ahead of the rate a burst may run (the bucket's tolerance);
    /// `nil`: a quarter of the target. A full burst queues for this long.
    public var burst: Duration? = nil
    /// An update waits for this many completed events...
    public var samplesPerUpdate: Int = 100
    /// ...or this long, whichever comes first (a window with no completion
    /// and a non-empty queue extends until one completes).
    public var maximumUpdateInterval: Duration = .seconds(1)
    /// Producers look at the clock on every admission but check for an
    /// update (a statistics read) at most this often.
    public var minimumUpdateInterval: Duration = .milliseconds(25)

    public init(target: Duration, law: ResponseTimeControlLaw = .gradient()) {
        self.target = target
        self.law = law
    }

    func validate() {
        precondition(target > .zero, "the target response time must be positive")
        precondition(minRate > 0 && minRate <= maxRate, "need 0 < minRate <= maxRate")
        precondition(initialRate > 0, "initialRate must be positive")
        precondition(samplesPerUpdate >= 1, "samplesPerUpdate must be at least 1")
        precondition(
            minimumUpdateInterval >= .zero && maximumUpdateInterval >= minimumUpdateInterval,
            "need 0 <= minimumUpdateInterval <= maximumUpdateInterval")
        if case .gradient(let setpoint, let drain, let probe) = law {
            precondition(
                setpoint > 0 && drain >= 1 && probe >= 0, "gradient(setpoint: > 0, drainUpdates: >= 1, probe: >= 0)")
        }
        if case .aimd(let inc, let dec, let low, let high, let smoothing) = law {
            precondition(
                inc >= 0 && dec > 1 && low <= high && (0..<1).contains(smoothing),
                "aimd(increase: >= 0, decreaseFactor: > 1, lowWater <= highWater, smoothing in 0..<1)")
        }
    }
}

/// What a response-time controller did at its last update.
public enum ResponseTimeDecision: String, Sendable, Equatable {
    /// No update yet.
    case none
    /// The rate stayed.
    case hold
    /// The rate went up toward the room under the setpoint.
    case increase
    /// The stage had idle threads and refused events: the rate was raised to
    /// find the capacity.
    case probe
    /// The rate went down to drain the queue.
    case decrease
    /// Nothing completed and nothing waited: the stage was idle.
    case idle
}

/// A response-time controller's state, for the profiler and for logs. A
/// stage's snapshot carries it (``StageSnapshot/responseTime``), the stage
/// graph shows it and `StageMetricsExporter` (`SedaMetrics`) exports it.
public struct ResponseTimeControllerState: Sendable, Equatable {
    /// The 90th-percentile response time the controller aims for.
    public var target: Duration
    /// Events per second admitted now (`.infinity`: unlimited).
    public var rate: Double
    /// The last window's p90 response time (see ``ResponseTimeController``).
    public var lastP90: Duration?
    /// The smoothed p90 the law acts on.
    public var smoothedP90: Duration?
    /// The last window's p90 queueing delay alone.
    public var queueDelayP90: Duration?
    /// Events per second the stage completed in the last window.
    public var throughput: Double
    /// The throughput last measured while events were queueing: the stage's
    /// capacity as far as the controller knows.
    public var capacityEstimate: Double?
    /// Events completed in the last window.
    public var windowEvents: UInt64
    /// Events the controller refused in the last window.
    public var windowRefusals: Int
    public var updates: Int
    public var lastDecision: ResponseTimeDecision
}

/// Keeps a stage's 90th-percentile response time near a target by adjusting
/// the rate of a token bucket that guards it: Sandstorm's response-time
/// ("direct") controller, Welsh & Culler, *Adaptive Overload Control for
/// Busy Internet Servers* (USITS 2003), with a better control law by
/// default (``ResponseTimeControlLaw/gradient(setpoint:drainUpdates:probe:)``).
/// Refused events count as ``RejectionReason/responseTime``.
///
/// **What it measures.** Per window (`samplesPerUpdate` completions or
/// `maximumUpdateInterval`, whichever first) the controller reads the
/// stage's statistics and takes the difference from the previous reading:
/// completions per second, and the p90 of the response time, *from enqueue
/// to the return of the handler call that got the event*: queueing delay
/// plus the handler time of its batch. The core keeps those two as separate
/// histograms, not their sum per event, so the p90 is that of their
/// convolution: exact when service times are equal (as with `batchSize` 1
/// and a steady handler), close when the two are not strongly correlated;
/// within ±6.25% (bucket midpoints). Only events that completed in the
/// window are measured: those still waiting are seen through the queue's
/// length. It guards one stage: give each stage its own controller.
///
/// **Where it runs.** Entirely on the enqueuing path, with no thread of its
/// own: every admission reads the clock and takes a token (one CAS); at most
/// once per `minimumUpdateInterval` one producer wins an atomic flag, reads
/// the statistics and, if the window is complete, updates the rate (the
/// others meanwhile admit at the old rate). Updates are logged at debug
/// level; ``state`` shows the last one. Deterministic with
/// ``SedaClock/manual(startingAt:)``.
///
/// Thread rules: any thread, at once.
public final class ResponseTimeController<Event: AnyObject & Sendable>: AdmissionController, ReportsResponseTime {
    let loop: ResponseTimeLoop

    public init(_ options: ResponseTimeControllerOptions, logger: Logger = Logger(label: "seda.admission")) {
        loop = ResponseTimeLoop(options, classes: 1, logger: logger)
    }

    public convenience init(
        target: Duration, law: ResponseTimeControlLaw = .gradient(),
        logger: Logger = Logger(label: "seda.admission")
    ) {
        self.init(ResponseTimeControllerOptions(target: target, law: law), logger: logger)
    }

    public var options: ResponseTimeControllerOptions { loop.options }
    /// The last update's measurements and decision.
    public var state: ResponseTimeControllerState { loop.state }

    var responseTimeState: ResponseTimeControllerState? { loop.state }

    public func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        loop.admit(priorityClass: 0, probe: stage) ? nil : .responseTime
    }

    public func undo(_ event: Event, at stage: StageProbe) {
        loop.giveBack()
    }
}

/// A response-time controller for events of several priority classes
/// (``Prioritized``): one admission rate for the stage, set as by
/// ``ResponseTimeController``, which higher classes take first, so that
/// overload sheds the lowest class, then the next ("allow stock trading
/// orders but not quotes"). Welsh & Culler's multiclass controller.
///
/// The classes share one token bucket whose depth is split: class `c` of
/// `n` may take a token only while `n − c` bursts' worth of tolerance
/// remain, so the lowest class stops at the last burst while class 0 may
/// use all `n`. A flood of low-priority events therefore keeps the bucket
/// at its lowest class's limit, and every higher-priority event still finds
/// a token, up to the whole rate. Priorities beyond the last class count as
/// the last, negative ones as 0. Refusals are ``RejectionReason/responseTime``
/// and counted per class in ``classCounts``.
///
/// Thread rules: any thread, at once.
public final class MultiClassResponseTimeController<Event: AnyObject & Sendable & Prioritized>: AdmissionController,
    ReportsResponseTime
{
    /// Events admitted and refused by one priority class.
    public struct ClassCount: Sendable, Equatable {
        public var admitted: UInt64
        public var refused: UInt64
    }

    let loop: ResponseTimeLoop
    private let counters: [PriorityClassCounter]

    /// `classes` priority classes (>= 1; priority 0 the highest).
    public init(
        _ options: ResponseTimeControllerOptions, classes: Int,
        logger: Logger = Logger(label: "seda.admission")
    ) {
        precondition(classes >= 1, "MultiClassResponseTimeController needs at least one class")
        loop = ResponseTimeLoop(options, classes: classes, logger: logger)
        counters = (0..<classes).map { _ in PriorityClassCounter() }
    }

    public convenience init(
        target: Duration, classes: Int, law: ResponseTimeControlLaw = .gradient(),
        logger: Logger = Logger(label: "seda.admission")
    ) {
        self.init(ResponseTimeControllerOptions(target: target, law: law), classes: classes, logger: logger)
    }

    public var options: ResponseTimeControllerOptions { loop.options }
    /// The last update's measurements and decision.
    public var state: ResponseTimeControllerState { loop.state }

    var responseTimeState: ResponseTimeControllerState? { loop.state }

    /// Admitted and refused events per class, index = priority.
    public var classCounts: [ClassCount] {
        counters.map {
            ClassCount(admitted: $0.admitted.load(ordering: .relaxed), refused: $0.refused.load(ordering: .relaxed))
        }
    }

    private func priorityClass(_ event: Event) -> Int { min(max(event.priority, 0), counters.count - 1) }

    public func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        let c = priorityClass(event)
        if loop.admit(priorityClass: c, probe: stage) {
            counters[c].admitted.add(1, ordering: .relaxed)
            return nil
        }
        counters[c].refused.add(1, ordering: .relaxed)
        return .responseTime
    }

    public func undo(_ event: Event, at stage: StageProbe) {
        counters[priorityClass(event)].admitted.subtract(1, ordering: .relaxed)
        loop.giveBack()
    }
}

final class PriorityClassCounter: Sendable {
    let admitted = Atomic<UInt64>(0)
    let refused = Atomic<UInt64>(0)
}

// MARK: - The control loop

/// The loop both controllers run: a shared token bucket, the gate that lets
/// one producer at a time update, and the memory of the previous window.
final class ResponseTimeLoop: Sendable {
    let options: ResponseTimeControllerOptions
    let classes: Int
    private let logger: Logger
    private let bucket: GCRA
    /// Each class's reach into the bucket is this many ns per class above it.
    private let tolerance: Int64
    private let minInterval: Int64
    private let maxInterval: Int64
    private let target: Double

    /// No producer checks for an update before this clock reading.
    private let nextCheck = Atomic<Int64>(.min)
    /// Held by the producer that is updating (acquire on winning, release
    /// on leaving: pairs the memory below between successive winners; the
    /// lock makes the same explicit for TSan and for ``state`` readers).
    private let updating = Atomic<Bool>(false)
    /// Refusals since the last update: "was the bucket binding?".
    private let refusals = Atomic<Int>(0)
    private let memory: Lock<Memory>

    struct Memory {
        var baseline: StageStatistics?
        var baselineTime: Int64 = 0
        var stage: ObjectIdentifier?
        var smoothed: Double?
        var capacity: Double?
        var state: ResponseTimeControllerState
    }

    init(_ options: ResponseTimeControllerOptions, classes: Int, logger: Logger) {
        options.validate()
        self.options = options
        self.classes = classes
        self.logger = logger
        bucket = GCRA(rate: min(options.initialRate, options.maxRate))
        tolerance = (options.burst ?? options.target / 4).saturatingNanoseconds
        minInterval = options.minimumUpdateInterval.saturatingNanoseconds
        maxInterval = options.maximumUpdateInterval.saturatingNanoseconds
        target = Double(options.target.saturatingNanoseconds)
        memory = Lock(
            Memory(
                state: ResponseTimeControllerState(
                    target: options.target, rate: bucket.rate, lastP90: nil, smoothedP90: nil, queueDelayP90: nil,
                    throughput: 0,
                    capacityEstimate: nil, windowEvents: 0, windowRefusals: 0, updates: 0, lastDecision: .none)))
    }

    var state: ResponseTimeControllerState { memory.withLock { $0.state } }

    /// Takes a token for an event of class `c`; may run an update first.
    func admit(priorityClass c: Int, probe: StageProbe) -> Bool {
        let now = probe.clock.now
        if now >= nextCheck.load(ordering: .relaxed) { maybeUpdate(now: now, probe: probe) }
        if bucket.take(now: now, tolerance: tolerance * Int64(classes - c)) { return true }
        refusals.add(1, ordering: .relaxed)
        return false
    }

    func giveBack() { bucket.giveBack() }

    private func maybeUpdate(now: Int64, probe: StageProbe) {
        // One producer wins; the others admit at the current rate meanwhile.
        guard updating.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return }
        defer { updating.store(false, ordering: .releasing) }
        guard now >= nextCheck.load(ordering: .relaxed) else { return }  // the previous winner just checked
        nextCheck.store(now + minInterval, ordering: .relaxed)
        memory.withLock { update(&$0, now: now, probe: probe) }
    }

    /// Runs under the lock, on the one producer that won the flag.
    private func update(_ m: inout Memory, now: Int64, probe: StageProbe) {
        let reading = StageStatistics(stage: probe.stage.pointer)
        let id = ObjectIdentifier(probe.stage)
        guard let base = m.baseline, m.stage == id else {
            if m.stage != nil, m.stage != id {
                logger.warning(
                    "a response-time controller guards one stage; it now measures another",
                    metadata: ["stage": "\(probe.name)"])
            }
            (m.baseline, m.baselineTime, m.stage) = (reading, now, id)
            return
        }
        let elapsed = now - m.baselineTime
        let completed = reading.processed &- base.processed
        var early = false
        if case .gradient(let setpoint, _, _) = options.law, elapsed > 0,
            completed >= UInt64(max(1, options.samplesPerUpdate / 5))
        {
            // The queue alone already implies a wait over the setpoint (the
            // capacity dropped, or a flood came in at an old rate): act on a
            // fifth of a window rather than let it grow for the rest.
            // Drained at the stage's service rate (all threads busy), not
            // at the window's throughput, which counts its idle time too.
            let busy = reading.handlerNanoseconds &- base.handlerNanoseconds
            let perEvent =
                busy > 0 && busy < UInt64.max / 2
                ? Double(busy) / Double(completed) / Double(parallelism(reading))
                : Double(elapsed) / Double(completed)
            let wait = Double(reading.queueLength) * perEvent
            early = wait > setpoint * target
        }
        if completed < UInt64(options.samplesPerUpdate) && elapsed < maxInterval && !early { return }
        if completed == 0 && reading.queueLength > 0 { return }  // nothing finished yet: widen the window
        let window = ResponseTimeWindow(from: base, to: reading)
        let refused = refusals.exchange(0, ordering: .relaxed)
        (m.baseline, m.baselineTime) = (reading, now)

        let dt = Double(max(elapsed, 1)) / 1e9
        let throughput = Double(window.events) / dt
        let rate = bucket.rate
        var next = rate
        var decision = ResponseTimeDecision.hold
        if window.events == 0 {
            // Idle: nothing completed, nothing waits. If the bucket refused
            // anyway, the rate is below even this trickle: probe up.
            decision = .idle
            if refused > 0, rate.isFinite, case .gradient(_, _, let probe) = options.law {
                next = rate * (1 + probe)
                decision = .probe
            }
        } else {
            switch options.law {
            case .gradient(let setpoint, let drainUpdates, let probeStep):
                let p = window.p90
                var smoothed = m.smoothed.map { p > $0 ? p : 0.5 * $0 + 0.5 * p } ?? p
                // The spike is over when the window was under the setpoint
                // and nothing waits: forget it rather than decay from it.
                if reading.queueLength == 0 && p <= setpoint * target { smoothed = p }
                m.smoothed = smoothed
                // A full window at this throughput, even when this one ended early.
                let windowLength = max(Double(max(elapsed, 1)), Double(options.samplesPerUpdate) / throughput * 1e9)
                let tau = drainUpdates * windowLength  // ns
                // What the stage could complete with every thread busy: a
                // window's throughput says so only when the stage was busy
                // all of it (after a burst it idles part of the window).
                let serviceCap = serviceCapacity(window, base, reading)
                // ns a new arrival waits: the queue drains with every
                // thread busy, at the service capacity.
                let impliedWait = Double(reading.queueLength) / max(throughput, serviceCap ?? 0) * 1e9
                // What an event enqueued now can expect: the queue's wait
                // plus the window's service part. It leads the measured p90.
                let present = impliedWait + max(0, p - window.queueDelayP90)
                let room = setpoint * target - max(smoothed, present)  // ns; < 0 over the setpoint
                let queueing = window.queueDelayP90 >= 0.1 * target
                if queueing && reading.queueLength > 0 {
                    m.capacity = serviceCap.map { max($0, throughput) } ?? throughput
                }
                let excess = min(-room, impliedWait)
                if room < 0 && queueing && excess > 0 {
                    next = min(rate, throughput) * max(0.1, 1 - excess / tau)
                    decision = .decrease
                } else if refused > 0 {
                    var gain = max(room, 0) / tau
                    if !queueing { gain = max(gain, min(probeStep, max(room, 0) / Double(max(elapsed, 1)))) }
                    next = throughput * (1 + gain)
                    if !queueing {
                        next = max(next, rate)
                        if reading.queueLength == 0, let c = m.capacity { next = max(next, 0.95 * c) }
                    }
                    if room > 0, let c = serviceCap, c > throughput {
                        // Idle threads: the stage's own service time says how
                        // far it is from saturation. Close half the gap per
                        // update (below capacity nothing builds up; a
                        // saturated stage has c ≈ X, and the law above
                        // rules). A queueing delay at low utilisation is a
                        // wake-up's latency, not a backlog.
                        next = max(next, throughput + 0.5 * (c - throughput))
                    }
                    if room < 0 { next = max(next, rate) }
                    if next > rate { decision = queueing ? .increase : .probe }
                }
                if let c = m.capacity { next = min(next, max(2 * throughput, 1.25 * c)) }
                if next < rate { decision = .decrease }
            case .aimd(let increase, let factor, let lowWater, let highWater, let smoothing):
                let p = window.p90
                let smoothed = m.smoothed.map { smoothing * $0 + (1 - smoothing) * p } ?? p
                m.smoothed = smoothed
                if smoothed > highWater * target {
                    next = (rate.isFinite ? rate : throughput) / factor
                    decision = .decrease
                } else if smoothed < lowWater * target, rate.isFinite {
                    next = rate + increase
                    decision = .increase
                }
            }
        }
        next = min(max(next, options.minRate), options.maxRate)
        if next != rate { bucket.setRate(next) }

        func duration(_ ns: Double) -> Duration { Duration(saturatingNanoseconds: ns) }
        m.state = ResponseTimeControllerState(
            target: options.target, rate: bucket.rate,
            lastP90: window.events > 0 ? duration(window.p90) : m.state.lastP90,
            smoothedP90: m.smoothed.map(duration),
            queueDelayP90: window.events > 0 ? duration(window.queueDelayP90) : m.state.queueDelayP90,
            throughput: throughput, capacityEstimate: m.capacity, windowEvents: window.events,
            windowRefusals: refused, updates: m.state.updates + 1, lastDecision: decision)
        logger.debug(
            "response-time controller update",
            metadata: [
                "stage": "\(probe.name)", "decision": "\(decision.rawValue)",
                "rate": "\(rate) -> \(m.state.rate)", "p90": "\(m.state.lastP90.map(describeDuration) ?? "-")",
                "smoothedP90": "\(m.state.smoothedP90.map(describeDuration) ?? "-")",
                "queueDelayP90": "\(m.state.queueDelayP90.map(describeDuration) ?? "-")",
                "target": "\(describeDuration(options.target))", "throughput": "\(throughput)",
                "queue": "\(reading.queueLength)", "refused": "\(refused)", "events": "\(window.events)",
            ])
    }
}

/// The events per second a stage could complete with every thread busy,
/// from the window's handler time: its threads (a dedicated pool's live
/// threads, else its concurrency) over the handler time per event. Nil
/// when the window measured no handler time. Handler time is wall time, so
/// a thread that loses the CPU to others shows a lower capacity.
func serviceCapacity(_ window: ResponseTimeWindow, _ from: StageStatistics, _ to: StageStatistics) -> Double? {
    let busy = to.handlerNanoseconds &- from.handlerNanoseconds
    guard window.events > 0, busy > 0, busy < UInt64.max / 2 else { return nil }
    return Double(parallelism(to)) * Double(window.events) * 1e9 / Double(busy)
}

/// Handler calls a stage runs at once: a dedicated pool's live threads,
/// else its concurrency.
func parallelism(_ s: StageStatistics) -> Int { s.threads > 0 ? s.threads : max(1, s.concurrency) }

private func describeDuration(_ d: Duration) -> String {
    formatNanos(UInt64(max(0, d.saturatingNanoseconds)))
}
