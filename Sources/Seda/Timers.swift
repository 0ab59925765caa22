import CSedaCore
import Glibc
import Synchronization

/// Identifies a scheduled timer; never reused by its ``Timers``.
public struct TimerID: Hashable, Sendable {
    public let rawValue: UInt64
}

/// Events delivered to a stage at a later time: Sandstorm's timer stage,
/// over the C core's hierarchical timing wheel (add, cancel and fire cost the
/// same with a million timers pending as with a thousand).
///
/// Timers are control events: admission control and queue disciplines never
/// drop them, and an admission controller never hears of them. A timer whose
/// stage is full when it falls due is not dropped: it stays pending and is
/// retried every tick, ahead of later timers for that stage (control events
/// such as a periodic cleanup must never vanish). A timer whose stage is
/// closed (destroyed, or the runtime shutting down) releases its event and
/// is counted in ``Stats/undeliverable``; a repeating timer stops there.
///
/// A stage that wants a periodic tick gets one with
/// ``scheduleRepeating(_:to:every:)`` once the stage exists: nothing has to
/// re-arm it from the handler (whose own sink does not exist yet when the
/// handler is built).
///
/// Thread rules: any thread may schedule and cancel. With a manual clock,
/// call ``poll()`` after moving it (deterministic tests); otherwise the
/// facility's own thread fires the timers (`startThread: true`).
public final class Timers: @unchecked Sendable {
    // @unchecked: the C facility is safe for concurrent use; `handle` never
    // changes; `repeating` is guarded by its lock.
    let handle: OpaquePointer
    /// The clock deadlines are read on (kept alive while the facility is).
    public let clock: SedaClock
    /// The repeating timers by their ``TimerID`` (the id of their first
    /// arming, which the facility never reuses).
    private let repeating = Lock<[UInt64: RepeatState]>([:])

    /// - Parameters:
    ///   - clock: usually the runtime's (`runtime.clock`).
    ///   - resolution: the tick; timers fire at most one tick late.
    ///   - startThread: fire from the facility's own thread (`seda-timers`).
    public init(clock: SedaClock, resolution: Duration = .milliseconds(1), startThread: Bool = true) throws(SedaError) {
        var t: OpaquePointer?
        _ = try SedaError.check(
            seda_timers_create(
                &t, clock.pointer, max(0, resolution.saturatingNanoseconds),
                undeliverableEntry, nil))
        handle = t!
        self.clock = clock
        if startThread {
            let r = seda_timers_start(handle, "seda-timers")
            if r < 0 {
                seda_timers_destroy(handle, handBackEntry, nil)
                throw SedaError(code: r)
            }
        }
    }

    deinit {
        // Stops the thread; pending events are released.
        seda_timers_destroy(handle, handBackEntry, nil)
    }

    /// Delivers `event` to `sink` after `delay` (a negative delay is due now).
    @discardableResult
    public func schedule<Event>(_ event: Event, to sink: Sink<Event>, after delay: Duration) throws(SedaError)
        -> TimerID
    {
        try add(TimerEntry(stage: sink.stage, event: event)) { entry, id in
            seda_timers_add_after(handle, max(0, delay.saturatingNanoseconds), deliverEntry, nil, entry, &id)
        }
    }

    /// Delivers `event` to `sink` when the clock reads `deadline` (ns).
    @discardableResult
    public func schedule<Event>(_ event: Event, to sink: Sink<Event>, atNanoseconds deadline: Int64) throws(SedaError)
        -> TimerID
    {
        try add(TimerEntry(stage: sink.stage, event: event)) { entry, id in
            seda_timers_add_at(handle, deadline, deliverEntry, nil, entry, &id)
        }
    }

    /// Delivers `event` to `sink` every `interval`, first one interval from
    /// now, until ``cancel(_:)`` (or the stage closes, or the facility goes).
    /// The same event instance is delivered each time: make it immutable.
    ///
    /// The schedule is fixed: each tick is due one interval after the one
    /// before it was due, whenever that one was delivered, so ticks do not
    /// drift; ticks missed while the stage was full (a tick waits for room,
    /// as every timer does) are skipped, not delivered in a burst. Throws
    /// ``SedaError/invalidArgument`` for an interval under a nanosecond.
    @discardableResult
    public func scheduleRepeating<Event>(
        _ event: Event, to sink: Sink<Event>,
        every interval: Duration
    ) throws(SedaError) -> TimerID {
        let step = interval.saturatingNanoseconds
        guard step > 0 else { throw .invalidArgument }
        let state = RepeatState(facility: handle, clock: clock.pointer, interval: step)
        let first = saturatingAdd(clock.now, step)
        // The facility's lock is not held while the deliver function runs, so
        // a first tick may come before the arming is recorded: the state
        // lock, held across the arming, makes it wait.
        let id = try state.lock.withLock { armed throws(SedaError) -> TimerID in
            let id = try add(TimerEntry(stage: sink.stage, event: event, repeating: state)) { entry, id in
                seda_timers_add_at(handle, first, deliverEntry, nil, entry, &id)
            }
            armed = RepeatState.Armed(id: id.rawValue, deadline: first)
            return id
        }
        // Not under the state lock (cancel takes the two locks one after the
        // other, never nested). The caller learns the id only now.
        repeating.withLock { r in
            r = r.filter { !$0.value.ended }  // forget those whose stage closed
            r[id.rawValue] = state
        }
        return id
    }

    private func add(
        _ timer: TimerEntry,
        _ register: (UnsafeMutableRawPointer, inout UInt64) -> Int32
    ) throws(SedaError) -> TimerID {
        let entry = Unmanaged.passRetained(timer).toOpaque()
        var id: UInt64 = 0
        let r = register(entry, &id)
        if r < 0 {
            Unmanaged<TimerEntry>.fromOpaque(entry).release()  // releases the event too
            throw SedaError(code: r)
        }
        return TimerID(rawValue: id)
    }

    /// Cancels a pending timer and releases its event; a repeating timer
    /// delivers nothing more. Returns `false` if it already fired (or was
    /// cancelled, or never existed, or a repeating timer's stage closed).
    @discardableResult
    public func cancel(_ id: TimerID) -> Bool {
        if let state = repeating.withLock({ $0.removeValue(forKey: id.rawValue) }) {
            // From now on its delivery does not re-arm it; cancel the arming
            // pending now (if its delivery is running, that delivery sees the
            // flag and releases the entry itself).
            let current = state.stop()
            guard let current else { return false }
            cancelOnce(current)
            return true
        }
        return cancelOnce(id.rawValue)
    }

    /// Cancels one arming. A delivery running at this instant (-EBUSY) ends
    /// in microseconds: wait for it with a backoff (yield, then sleeps from
    /// 10 µs up to 1 ms), not a spin.
    @discardableResult
    private func cancelOnce(_ id: UInt64) -> Bool {
        var entry: UnsafeMutableRawPointer?
        var r = seda_timers_cancel(handle, id, &entry)
        var pause: UInt32 = 0
        while r == -EBUSY {
            if pause == 0 { sched_yield() } else { usleep(pause) }
            pause = pause == 0 ? 10 : min(pause * 2, 1000)
            r = seda_timers_cancel(handle, id, &entry)
        }
        guard r == 0, let entry else { return false }
        Unmanaged<TimerEntry>.fromOpaque(entry).release()
        return true
    }

    /// Cancels every pending timer, releasing the events; returns how many.
    /// Repeating timers stop.
    @discardableResult
    public func cancelAll() -> Int {
        let states = repeating.withLock { r in
            defer { r.removeAll() }
            return Array(r.values)
        }
        for s in states { _ = s.stop() }
        return Int(seda_timers_cancel_all(handle, handBackEntry, nil))
    }

    /// Fires every timer due now, on this thread (for manual clocks). Returns
    /// the time until the next has work, or `nil` when none is pending.
    @discardableResult
    public func poll() -> Duration? {
        let ns = seda_timers_poll(handle)
        return ns < 0 ? nil : .nanoseconds(ns)
    }

    /// The facility's counters. A repeating timer counts once in `added` and
    /// `fired` per arming, i.e. per tick.
    public struct Stats: Sendable, Equatable {
        public var pending, added, fired, retries, undeliverable, cancelled: UInt64
    }

    public var stats: Stats {
        var s = seda_timers_stats_t()
        seda_timers_stats(handle, &s)
        return Stats(
            pending: s.pending, added: s.added, fired: s.fired, retries: s.retries,
            undeliverable: s.undeliverable, cancelled: s.cancelled)
    }
}

/// A repeating timer's schedule: the arming pending now (`nil` once
/// stopped), re-armed by each delivery.
final class RepeatState: @unchecked Sendable {
    // @unchecked: the C facility and clock are safe for concurrent use; the
    // arming is guarded by `lock`; `stopped` is atomic.
    struct Armed {
        var id: UInt64
        var deadline: Int64
    }

    let facility: OpaquePointer
    let clock: OpaquePointer?
    let interval: Int64
    /// Guards the arming: a stop clears it, a delivery replaces it.
    let lock = Lock<Armed?>(nil)
    /// Set once the arming is cleared for good (read without the lock, to
    /// forget ended timers). Relaxed: a hint for housekeeping only.
    private let stopped = Atomic<Bool>(false)

    var ended: Bool { stopped.load(ordering: .relaxed) }

    /// Stops re-arming; returns the arming pending until now, if any.
    func stop() -> UInt64? {
        let current: UInt64? = lock.withLock { armed in
            defer { armed = nil }
            return armed?.id
        }
        stopped.store(true, ordering: .relaxed)
        return current
    }

    init(facility: OpaquePointer, clock: OpaquePointer?, interval: Int64) {
        self.facility = facility
        self.clock = clock
        self.interval = interval
    }

    /// After a delivery of `entry`: arms the next tick (one interval after
    /// the last was due, skipping any already past) unless cancelled.
    /// Returns whether it did; if not, the entry is the caller's to release.
    func rearm(_ entry: UnsafeMutableRawPointer) -> Bool {
        lock.withLock { armed in
            guard let last = armed else { return false }
            let now = seda_clock_now(clock)
            var next = saturatingAdd(last.deadline, interval)
            if next <= now {
                let missed = (now - next) / interval + 1
                let (skip, overflow) = missed.multipliedReportingOverflow(by: interval)
                next = overflow ? .max : saturatingAdd(next, skip)
            }
            var id: UInt64 = 0
            // Allowed from a deliver function: it runs without the facility's lock.
            guard seda_timers_add_at(facility, next, deliverEntry, nil, entry, &id) == 0 else {
                armed = nil
                stopped.store(true, ordering: .relaxed)
                return false
            }
            armed = Armed(id: id, deadline: next)
            return true
        }
    }
}

/// A pending timer: the stage to deliver to and the retained event. The
/// facility's "event" is this entry, so a cancel hands back both.
private final class TimerEntry {
    let stage: StageHandle
    var event: UnsafeMutableRawPointer?
    /// Set for a repeating timer: the entry is re-armed after each delivery
    /// and keeps its own reference to the event.
    let repeating: RepeatState?

    init<Event: AnyObject>(stage: StageHandle, event: Event, repeating: RepeatState? = nil) {
        self.stage = stage
        self.event = Unmanaged.passRetained(event).toOpaque()
        self.repeating = repeating
    }

    deinit {
        if let event { Unmanaged<AnyObject>.fromOpaque(event).release() }
    }
}

private let deliverEntry: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32 = { _, p in
    let entry = Unmanaged<TimerEntry>.fromOpaque(p!)
    let e = entry.takeUnretainedValue()
    let event = Unmanaged<AnyObject>.fromOpaque(e.event!)
    // A control event: no admission policy or queue discipline drops a timer.
    guard let repeating = e.repeating else {
        let r = seda_stage_enqueue_control(e.stage.pointer, e.event!)
        if r >= 0 {
            e.event = nil  // the stage's queue owns it now
            entry.release()
        }
        return r
    }
    // A repeating timer keeps its reference: the queue gets one of its own.
    _ = event.retain()
    let r = seda_stage_enqueue_control(e.stage.pointer, e.event!)
    if r < 0 {
        event.release()
        return r  // full: retried as it is; closed: undeliverable releases the entry
    }
    // Delivered: this arming is finished; the entry moves to the next one.
    if !repeating.rearm(p!) { entry.release() }
    return r
}

private let undeliverableEntry:
    @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32) -> Void = {
        _, _, p, _ in
        let entry = Unmanaged<TimerEntry>.fromOpaque(p!)
        _ = entry.takeUnretainedValue().repeating?.stop()
        entry.release()
    }

private let handBackEntry:
    @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, _, p in
        let entry = Unmanaged<TimerEntry>.fromOpaque(p!)
        _ = entry.takeUnretainedValue().repeating?.stop()
        entry.release()
    }
