import CSedaCore

/// Where events for a stage go: its queue, with the stage's load
/// conditioning. Cheap to copy; any thread may use it, handlers included.
///
/// A sink keeps the stage's memory alive, not the stage: once the stage is
/// destroyed (or the runtime shut down) every enqueue throws
/// ``SedaError/closed``.
public struct Sink<Event: AnyObject & Sendable>: Sendable {
    @usableFromInline let stage: StageHandle

    init(stage: StageHandle) { self.stage = stage }

    /// The stage's name.
    public var name: String { stage.name }

    /// Enqueues one event. Throws ``SedaError/full`` (SinkFull: the queue is
    /// at capacity; the event was not accepted) or ``SedaError/closed``
    /// (SinkClosed: the stage is gone or the runtime is stopping).
    @inlinable
    public func enqueue(_ event: consuming Event) throws(SedaError) {
        let p = Unmanaged.passRetained(event).toOpaque()
        let r = seda_stage_enqueue(stage.pointer, p)
        if r < 0 {
            Unmanaged<Event>.fromOpaque(p).release()
            throw SedaError(code: r)
        }
    }

    /// Enqueues one event if the stage accepts it; returns whether it did. A
    /// refused event is released (and counted by the stage).
    @inlinable
    @discardableResult
    public func enqueueLossy(_ event: consuming Event) -> Bool {
        let p = Unmanaged.passRetained(event).toOpaque()
        if seda_stage_enqueue(stage.pointer, p) < 0 {
            Unmanaged<Event>.fromOpaque(p).release()
            return false
        }
        return true
    }

    /// Enqueues every event, in order and adjacent in the queue, or none:
    /// throws ``SedaError/full``, ``SedaError/closed``, or
    /// ``SedaError/invalidArgument`` when there are more than the capacity.
    public func enqueueMany<C: Collection>(_ events: C) throws(SedaError) where C.Element == Event {
        let n = events.count
        if n == 0 { return }
        let r: Int32 = withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: n) { buf in
            var i = 0
            for e in events {
                buf[i] = Unmanaged.passRetained(e).toOpaque()
                i += 1
            }
            let r = seda_stage_enqueue_many(stage.pointer, buf.baseAddress!, n)
            if r < 0 {
                for j in 0..<n { Unmanaged<Event>.fromOpaque(buf[j]!).release() }
            }
            return r
        }
        _ = try SedaError.check(r)
    }
}
