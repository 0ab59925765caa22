import CSedaCore
import Glibc

/// Identifies a scheduled timer; never reused by its ``Timers``.
public struct TimerID: Hashable, Sendable {
    public let rawValue: UInt64
}

/// Events delivered to a stage at a later time: Sandstorm's timer stage,
/// over the C core's hierarchical timing wheel (add, cancel and fire cost the
/// same with a million timers pending as with a thousand).
///
/// Timers are control events: admission control and queue disciplines never
/// drop them. A timer whose stage is full when it falls due is not dropped: it stays
/// pending and is retried every tick, ahead of later timers for that stage
/// (control events such as a periodic cleanup must never vanish). A timer
/// whose stage is closed (destroyed, or the runtime shutting down) releases
/// its event and is counted in ``Stats/undeliverable``.
///
/// Thread rules: any thread may schedule and cancel. With a manual clock,
/// call ``poll()`` after moving it (deterministic tests); otherwise the
/// facility's own thread fires the timers (`startThread: true`).
public final class Timers: @unchecked Sendable {
    // @unchecked: the C facility is safe for concurrent use; `handle` never changes.
    let handle: OpaquePointer
    /// The clock deadlines are read on (kept alive while the facility is).
    public let clock: SedaClock

    /// - Parameters:
    ///   - clock: usually the runtime's (`runtime.clock`).
    ///   - resolution: the tick; timers fire at most one tick late.
    ///   - startThread: fire from the facility's own thread (`seda-timers`).
    public init(clock: SedaClock, resolution: Duration = .milliseconds(1), startThread: Bool = true) throws(SedaError) {
        var t: OpaquePointer?
        _ = try SedaError.check(seda_timers_create(&t, clock.pointer, nanoseconds(resolution), undeliverableEntry, nil))
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

    /// Delivers `event` to `sink` after `delay`.
    @discardableResult
    public func schedule<Event>(_ event: Event, to sink: Sink<Event>, after delay: Duration) throws(SedaError) -> TimerID {
        try add(event, sink) { entry, id in
            seda_timers_add_after(handle, nanoseconds(delay), deliverEntry, nil, entry, &id)
        }
    }

    /// Delivers `event` to `sink` when the clock reads `deadline` (ns).
    @discardableResult
    public func schedule<Event>(_ event: Event, to sink: Sink<Event>, atNanoseconds deadline: Int64) throws(SedaError) -> TimerID {
        try add(event, sink) { entry, id in
            seda_timers_add_at(handle, deadline, deliverEntry, nil, entry, &id)
        }
    }

    private func add<Event>(_ event: Event, _ sink: Sink<Event>,
                            _ register: (UnsafeMutableRawPointer, inout UInt64) -> Int32) throws(SedaError) -> TimerID {
        let entry = Unmanaged.passRetained(TimerEntry(stage: sink.stage, event: event)).toOpaque()
        var id: UInt64 = 0
        let r = register(entry, &id)
        if r < 0 {
            Unmanaged<TimerEntry>.fromOpaque(entry).release() // releases the event too
            throw SedaError(code: r)
        }
        return TimerID(rawValue: id)
    }

    /// Cancels a pending timer and releases its event. Returns `false` if it
    /// already fired (or was cancelled, or never existed).
    @discardableResult
    public func cancel(_ id: TimerID) -> Bool {
        var entry: UnsafeMutableRawPointer?
        var r = seda_timers_cancel(handle, id.rawValue, &entry)
        while r == -EBUSY_CODE { // its delivery is running this instant: ask again
            r = seda_timers_cancel(handle, id.rawValue, &entry)
        }
        guard r == 0, let entry else { return false }
        Unmanaged<TimerEntry>.fromOpaque(entry).release()
        return true
    }

    /// Cancels every pending timer, releasing the events; returns how many.
    @discardableResult
    public func cancelAll() -> Int {
        Int(seda_timers_cancel_all(handle, handBackEntry, nil))
    }

    /// Fires every timer due now, on this thread (for manual clocks). Returns
    /// the time until the next has work, or `nil` when none is pending.
    @discardableResult
    public func poll() -> Duration? {
        let ns = seda_timers_poll(handle)
        return ns < 0 ? nil : .nanoseconds(ns)
    }

    /// The facility's counters.
    public struct Stats: Sendable, Equatable {
        public var pending, added, fired, retries, undeliverable, cancelled: UInt64
    }

    public var stats: Stats {
        var s = seda_timers_stats_t()
        seda_timers_stats(handle, &s)
        return Stats(pending: s.pending, added: s.added, fired: s.fired, retries: s.retries,
                     undeliverable: s.undeliverable, cancelled: s.cancelled)
    }
}

/// A pending timer: the stage to deliver to and the retained event. The
/// facility's "event" is this entry, so a cancel hands back both.
private final class TimerEntry {
    let stage: StageHandle
    var event: UnsafeMutableRawPointer?

    init<Event: AnyObject>(stage: StageHandle, event: Event) {
        self.stage = stage
        self.event = Unmanaged.passRetained(event).toOpaque()
    }

    deinit {
        if let event { Unmanaged<AnyObject>.fromOpaque(event).release() }
    }
}

private let EBUSY_CODE: Int32 = -EBUSY


private let deliverEntry: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32 = { _, p in
    let entry = Unmanaged<TimerEntry>.fromOpaque(p!)
    let e = entry.takeUnretainedValue()
    // A control event: no admission policy or queue discipline drops a timer.
    let r = seda_stage_enqueue_control(e.stage.pointer, e.event)
    if r >= 0 {
        e.event = nil // the stage's queue owns it now
        entry.release()
    }
    return r
}

private let undeliverableEntry: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32) -> Void = { _, _, p, _ in
    Unmanaged<TimerEntry>.fromOpaque(p!).release()
}

private let handBackEntry: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, _, p in
    Unmanaged<TimerEntry>.fromOpaque(p!).release()
}
