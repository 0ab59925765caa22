import Synchronization

/// An event that belongs to a priority class, for the per-class policies
/// (``PerClassTokenBucket``, ``MultiClassResponseTimeController``).
/// Priority 0 is the highest; larger numbers are shed first.
///
/// Thread rules: `priority` is read on the enqueuing thread, once per
/// admission decision, and must not change while the event is being enqueued.
public protocol Prioritized: AnyObject {
    var priority: Int { get }
}

/// A token bucket kept as one atomic number: the generic cell rate algorithm
/// (GCRA, ATM's "virtual scheduling"). Instead of a token count refilled by a
/// timer, it stores the theoretical arrival time `tat` of the next event at
/// the configured rate; an event is admitted when `tat` is at most
/// `tolerance` ahead of now, and moves `tat` one interval on. Refilling is
/// therefore lazy (it is the passage of time) and an admission is one CAS.
/// `tolerance = (burst - 1) × interval` admits `burst` events at once from
/// an idle bucket.
///
/// Thread rules: any thread, at once; lock-free. Changing the rate while
/// events are admitted is safe: the debt already in `tat` is kept as a time,
/// so it drains at the new rate.
final class GCRA: Sendable {
    /// The next conforming time, in the clock's nanoseconds.
    private let tat = Atomic<Int64>(.min / 2)
    /// Nanoseconds per event; 0 admits everything.
    private let interval: Atomic<Int64>

    init(rate: Double) {
        interval = Atomic(GCRA.interval(forRate: rate))
    }

    /// `rate` events per second as nanoseconds per event; 0 when unlimited.
    static func interval(forRate rate: Double) -> Int64 {
        precondition(rate > 0, "a rate must be positive (got \(rate))")
        if rate >= 1e9 { return 0 }  // more than one event per nanosecond: unlimited
        return max(1, Int64((1e9 / rate).rounded()))
    }

    /// Events per second now (`.infinity` when unlimited).
    var rate: Double {
        let i = interval.load(ordering: .relaxed)
        return i == 0 ? .infinity : 1e9 / Double(i)
    }

    /// The interval now, for a caller that derives a tolerance from it.
    var intervalNanoseconds: Int64 { interval.load(ordering: .relaxed) }

    func setRate(_ rate: Double) {
        interval.store(GCRA.interval(forRate: rate), ordering: .relaxed)
    }

    /// Takes a token if `tat` is at most `tolerance` ns ahead of `now`.
    func take(now: Int64, tolerance: Int64) -> Bool {
        let step = interval.load(ordering: .relaxed)
        if step == 0 { return true }
        // Relaxed: the bucket publishes nothing but itself; the CAS orders
        // competing producers on `tat` alone.
        var current = tat.load(ordering: .relaxed)
        while true {
            let start = max(current, now)
            if start - now > tolerance { return false }
            let (exchanged, original) = tat.compareExchange(
                expected: current, desired: start + step,
                ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Gives a token back (an admitted event the queue then refused). A
    /// bucket that was idle meanwhile was full already: `tat` moves further
    /// into the past, which `max(tat, now)` ignores.
    func giveBack() {
        let step = interval.load(ordering: .relaxed)
        if step != 0 { tat.wrappingSubtract(step, ordering: .relaxed) }
    }

    /// Whole tokens available at `now` for a taker with `tolerance`.
    func available(now: Int64, tolerance: Int64) -> Int {
        let step = interval.load(ordering: .relaxed)
        if step == 0 { return .max }
        let debt = max(tat.load(ordering: .relaxed), now) - now
        return debt > tolerance ? 0 : Int((tolerance - debt) / step) + 1
    }
}

/// Admits at most `rate` events per second on average and `burst` at once:
/// a token bucket on the runtime's clock (``StageProbe/clock``), refilled
/// lazily at each admission, so a manual clock drives it deterministically.
/// A refused event's reason is ``RejectionReason/rateLimit``; an admitted
/// event the queue then refuses gets its token back.
///
/// Thread rules: any thread, at once (one atomic compare-and-swap per
/// admission); ``setRate(_:burst:)`` too.
public final class TokenBucket<Event: AnyObject & Sendable>: AdmissionController {
    private let bucket: GCRA
    private let tolerance: Atomic<Int64>
    private let burstSize: Atomic<Int>

    /// `rate` events per second (> 0; `.infinity` admits everything) with
    /// bursts of up to `burst` events (>= 1). The bucket starts full.
    public init(rate: Double, burst: Int) {
        precondition(burst >= 1, "TokenBucket burst \(burst) must be at least 1")
        bucket = GCRA(rate: rate)
        tolerance = Atomic(Int64(burst - 1) * bucket.intervalNanoseconds)
        burstSize = Atomic(burst)
    }

    /// Events per second now.
    public var rate: Double { bucket.rate }
    /// The largest burst now.
    public var burst: Int { burstSize.load(ordering: .relaxed) }

    /// Changes the rate (and the burst) while producers run. Tokens already
    /// taken stay taken: the change applies to the refill from now on.
    public func setRate(_ rate: Double, burst: Int? = nil) {
        let b = burst ?? self.burst
        precondition(b >= 1, "TokenBucket burst \(b) must be at least 1")
        bucket.setRate(rate)
        burstSize.store(b, ordering: .relaxed)
        tolerance.store(Int64(b - 1) * bucket.intervalNanoseconds, ordering: .relaxed)
    }

    /// Tokens available at the clock's `now` (for tests and the profiler).
    public func available(at now: Int64) -> Int {
        bucket.available(now: now, tolerance: tolerance.load(ordering: .relaxed))
    }

    public func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        bucket.take(now: stage.clock.now, tolerance: tolerance.load(ordering: .relaxed)) ? nil : .rateLimit
    }

    public func undo(_ event: Event, at stage: StageProbe) {
        bucket.giveBack()
    }
}

/// One token bucket per priority class (``Prioritized/priority``): class
/// `i` gets `limits[i]`; a priority beyond the last class uses the last
/// bucket, a negative one the first. Each class is limited on its own, so
/// one class's flood cannot take another's tokens (unlike
/// ``MultiClassResponseTimeController``, which shares one rate and lets
/// higher classes take it first).
///
/// Thread rules: those of ``TokenBucket``.
public final class PerClassTokenBucket<Event: AnyObject & Sendable & Prioritized>: AdmissionController {
    /// A class's rate (events per second) and burst (events).
    public struct Limit: Sendable, Equatable {
        public var rate: Double
        public var burst: Int
        public init(rate: Double, burst: Int) {
            self.rate = rate
            self.burst = burst
        }
    }

    private let buckets: [TokenBucket<Event>]

    /// `limits[i]` is priority class `i`'s (0 is the highest); at least one.
    public init(_ limits: [Limit]) {
        precondition(!limits.isEmpty, "PerClassTokenBucket needs at least one class")
        buckets = limits.map { TokenBucket(rate: $0.rate, burst: $0.burst) }
    }

    /// The bucket of priority class `priority` (clamped to the classes).
    public func bucket(forPriority priority: Int) -> TokenBucket<Event> {
        buckets[min(max(priority, 0), buckets.count - 1)]
    }

    public func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        bucket(forPriority: event.priority).admit(event, to: stage)
    }

    public func undo(_ event: Event, at stage: StageProbe) {
        bucket(forPriority: event.priority).undo(event, at: stage)
    }
}
