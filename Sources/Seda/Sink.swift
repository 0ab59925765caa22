import CSedaCore
import Glibc

/// Where events for a stage go: its queue, behind the stage's admission
/// controller. Cheap to copy; any thread may use it, handlers included.
///
/// A sink keeps the stage's memory alive, not the stage: once the stage is
/// destroyed (or the runtime shut down) every enqueue throws
/// ``SedaError/closed``.
public struct Sink<Event: AnyObject & Sendable>: Sendable {
    @usableFromInline let stage: StageHandle
    let admission: AdmissionBox<Event>?

    init(stage: StageHandle) {
        self.stage = stage
        // The registry checked the event type; the cast is done once here.
        admission = stage.admission as? AdmissionBox<Event>
    }

    /// The stage's name.
    public var name: String { stage.name }

    var probe: StageProbe { StageProbe(stage: stage, clock: stage.clock) }

    /// Enqueues one event. Throws ``SedaError/rejected(_:)`` (the admission
    /// controller refused it), ``SedaError/full`` (SinkFull: the queue is at
    /// capacity) or ``SedaError/closed`` (SinkClosed: the stage is gone or the
    /// runtime is stopping). On a throw the event was not accepted; every
    /// refusal is counted by the stage.
    ///
    /// On a stage with several ``StageOptions/priorityClasses``, an event
    /// whose type is ``Prioritized`` goes to the class its
    /// ``Prioritized/priority`` names (clamped to the stage's classes): the
    /// number the per-class admission policies read decides its place in the
    /// queue too. Other events go to the last class.
    public func enqueue(_ event: consuming Event) throws(SedaError) {
        let e = event
        if let routing = stage.priority {
            let c = UInt32(routing.priorityClass(of: e))
            try admitAndEnqueue(e) { seda_stage_enqueue_class(stage.pointer, $0, c) }
        } else {
            try admitAndEnqueue(e) { seda_stage_enqueue(stage.pointer, $0) }
        }
    }

    /// Admission, then `enqueue` with a retained reference (given back if the
    /// queue refuses, and the admission undone).
    private func admitAndEnqueue(
        _ event: Event,
        _ enqueue: (UnsafeMutableRawPointer) -> Int32
    ) throws(SedaError) {
        let probe = admission.map { _ in self.probe }
        if let admission, let probe, let reason = admission.controller.admit(event, to: probe) {
            stage.rejections.add(reason)
            throw .rejected(reason)
        }
        let p = Unmanaged.passRetained(event).toOpaque()
        let r = enqueue(p)
        if r < 0 {
            Unmanaged<Event>.fromOpaque(p).release()
            if let admission, let probe { admission.controller.undo(event, at: probe) }
            throw SedaError(code: r)
        }
    }

    /// Enqueues one event, waiting while the stage's queue is full for at
    /// most `timeout` (`nil`: no limit): backpressure for a producer that
    /// prefers to wait. The thread parks until the stage makes room.
    /// Admission still applies: a refusal is thrown at once, not waited out.
    /// Throws ``SedaError/timedOut``, ``SedaError/closed`` or
    /// ``SedaError/rejected(_:)``. From `async` code the `async` overload is
    /// used: it does not block a thread.
    ///
    /// From a handler on the runtime's shared threads, which must never
    /// block, it enqueues when the queue has room and throws
    /// ``SedaError/wouldDeadlock`` only when it would have to wait (counted
    /// as a full rejection): see <doc:ThreadRules> for what to do instead.
    ///
    /// A ``Prioritized`` event goes to its class as with ``enqueue(_:)``,
    /// and waits for room in that class's queue.
    public func enqueue(_ event: consuming Event, timeout: Duration?) throws(SedaError) {
        let e = event
        let ns = timeoutNanoseconds(timeout)
        // On a shared thread the C core enqueues when there is room and
        // returns -EDEADLK (counted as full) only when it would have to wait.
        if let routing = stage.priority {
            let c = UInt32(routing.priorityClass(of: e))
            try admitAndEnqueue(e) { seda_stage_enqueue_wait_class(stage.pointer, $0, c, ns) }
        } else {
            try admitAndEnqueue(e) { seda_stage_enqueue_wait(stage.pointer, $0, ns) }
        }
    }

    /// The `async` variant of ``enqueue(_:timeout:)``: while the queue is
    /// full it suspends (retrying with a backoff from 20 µs to 2 ms) instead
    /// of parking a thread, since Swift's cooperative pool has only one
    /// thread per CPU. Cancellation ends the wait with ``SedaError/timedOut``.
    public func enqueue(_ event: consuming Event, timeout: Duration?) async throws(SedaError) {
        let e = event
        let deadline = timeout.map { saturatingAdd(stage.clock.now, timeoutNanoseconds($0)) }
        var pause: Int64 = 20_000
        while true {
            do throws(SedaError) {
                try enqueue(e)
                return
            } catch let error {
                guard error == .full else { throw error }
            }
            if let deadline, stage.clock.now >= deadline { throw .timedOut }
            do {
                try await Task.sleep(for: .nanoseconds(pause))
            } catch {
                throw .timedOut
            }
            pause = Swift.min(pause * 2, 2_000_000)
        }
    }

    /// Enqueues one event into priority class `priorityClass` (0 is served
    /// first; see ``StageOptions/priorityClasses``), behind admission like
    /// ``enqueue(_:)``. Throws ``SedaError/invalidArgument`` for a class the
    /// stage does not have.
    public func enqueue(_ event: consuming Event, priorityClass: Int) throws(SedaError) {
        guard priorityClass >= 0, priorityClass < Int(SEDA_STAGE_MAX_CLASSES) else { throw .invalidArgument }
        try admitAndEnqueue(event) { seda_stage_enqueue_class(stage.pointer, $0, UInt32(priorityClass)) }
    }

    /// Enqueues one event if the stage accepts it; returns whether it did. A
    /// refused event is released (and counted by the stage).
    @discardableResult
    public func enqueueLossy(_ event: consuming Event) -> Bool {
        do throws(SedaError) {
            try enqueue(event)
            return true
        } catch {
            return false
        }
    }

    /// Enqueues a control event: the runtime's own or the application's
    /// housekeeping (a cleanup tick, a shutdown notice), which neither
    /// admission control nor the queue discipline may drop. Only a full or
    /// closed queue refuses it. The admission controller never hears of it
    /// (neither ``AdmissionController/admit(_:to:)`` nor
    /// ``AdmissionController/left(_:)``).
    public func enqueueControl(_ event: consuming Event) throws(SedaError) {
        let e = event
        let p = Unmanaged.passRetained(e).toOpaque()
        let r = seda_stage_enqueue_control(stage.pointer, p)
        if r < 0 {
            Unmanaged<Event>.fromOpaque(p).release()
            throw SedaError(code: r)
        }
    }

    /// Enqueues every event, in order and adjacent in the queue, or none:
    /// throws ``SedaError/rejected(_:)`` if admission refuses any of them,
    /// ``SedaError/full``, ``SedaError/closed``, or
    /// ``SedaError/batchTooLarge(count:capacity:)`` when there are more than
    /// the queue can ever hold.
    ///
    /// On a stage with several priority classes, a batch of ``Prioritized``
    /// events goes to one class, the most urgent (lowest) class its events'
    /// priorities name: all or none, in order and adjacent, and no event
    /// waits behind its priority. Enqueue events one by one to place each
    /// in its own class. Other events go to the last class.
    public func enqueueMany<C: Collection>(_ events: C) throws(SedaError) where C.Element == Event {
        let n = events.count
        if n == 0 { return }
        try checkBatch(n)
        try admitAll(events)
        let c = batchPriorityClass(events)
        let r: Int32 = withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: n) { buf in
            var i = 0
            for e in events {
                buf[i] = Unmanaged.passRetained(e).toOpaque()
                i += 1
            }
            let r =
                c.map { seda_stage_enqueue_many_class(stage.pointer, buf.baseAddress!, n, $0) }
                ?? seda_stage_enqueue_many(stage.pointer, buf.baseAddress!, n)
            if r < 0 {
                for j in 0..<n { Unmanaged<Event>.fromOpaque(buf[j]!).release() }
            }
            return r
        }
        if r < 0 {
            undoAll(events)
            throw SedaError(code: r)
        }
    }

    /// The priority class an all-or-none batch goes to (``enqueueMany(_:)``,
    /// ``EventBatch/forward(to:)``) on a stage that routes ``Prioritized``
    /// events: the most urgent (lowest) class the batch's events name,
    /// clamped to the stage's classes. One queue keeps the batch all or none
    /// and in order; the most urgent keeps every event at or ahead of its
    /// priority. `nil` for a stage without routing: the last class, where
    /// plain enqueues go.
    func batchPriorityClass<S: Sequence>(_ events: S) -> UInt32? where S.Element == Event {
        guard let routing = stage.priority else { return nil }
        var c = routing.classes - 1
        for e in events where c > 0 { c = Swift.min(c, routing.priorityClass(of: e)) }
        return UInt32(c)
    }

    /// Throws ``SedaError/batchTooLarge(count:capacity:)`` for more events
    /// than the stage's queue can hold at once.
    func checkBatch(_ n: Int) throws(SedaError) {
        if n > stage.queueCapacity { throw .batchTooLarge(count: n, capacity: stage.queueCapacity) }
    }

    /// Runs admission over a batch, all or nothing: on a refusal the events
    /// admitted so far are undone and the refusal thrown.
    func admitAll<C: Collection>(_ events: C) throws(SedaError) where C.Element == Event {
        guard let admission else { return }
        let probe = self.probe
        var admitted = 0
        for e in events {
            if let reason = admission.controller.admit(e, to: probe) {
                for undone in events.prefix(admitted) { admission.controller.undo(undone, at: probe) }
                stage.rejections.add(reason)
                throw .rejected(reason)
            }
            admitted += 1
        }
    }

    func undoAll<C: Collection>(_ events: C) where C.Element == Event {
        guard let admission else { return }
        let probe = self.probe
        for e in events { admission.controller.undo(e, at: probe) }
    }
}
