import CSedaCore

/// The application logic of a stage: Sandstorm's `EventHandlerIF`
/// (`init`, `handleEvents`, `destroy`).
///
/// Thread rules: the runtime's C threads call ``handle(_:)``: never two at
/// once unless the stage's concurrency is above 1, never on an actor. A
/// handler is therefore `Sendable`, synchronous and nonisolated (a main-actor
/// handler would trap when a C thread calls it). ``setUp(_:)`` runs on the
/// thread that adds the stage, before any event; ``tearDown()`` runs once,
/// after the last ``handle(_:)`` has returned.
public protocol EventHandler: Sendable {
    /// The events this stage takes.
    associatedtype Event: AnyObject & Sendable

    /// Called once with the stage's context before the first event. Throwing
    /// here fails the stage's creation with the error.
    func setUp(_ context: StageContext) throws

    /// Handles a batch of events, oldest first. The handler owns them: it may
    /// forward (``EventBatch/take(_:)`` then a sink's enqueue), filter, drop
    /// or reorder them; events left in the batch are released when it
    /// returns. A thrown error is counted in the stage's statistics and
    /// logged; the thread carries on with the next batch.
    func handle(_ batch: inout EventBatch<Event>) throws

    /// Called once when the stage is destroyed or the runtime shuts down.
    func tearDown()
}

extension EventHandler {
    public func setUp(_ context: StageContext) throws {}
    public func tearDown() {}
}

/// A batch of events handed to ``EventHandler/handle(_:)``: a view over the
/// C core's batch buffer, with no allocation and no reference counting per
/// event until the handler takes one.
///
/// The batch owns its events; ``take(_:)`` moves one out (the slot becomes
/// empty), subscripting borrows one. Whatever is still in the batch when the
/// handler returns is released. Valid only during the call.
public struct EventBatch<Event: AnyObject & Sendable>: ~Copyable {
    @usableFromInline let base: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    /// Number of slots (taken slots included).
    public let count: Int

    @usableFromInline init(base: UnsafeMutablePointer<UnsafeMutableRawPointer?>, count: Int) {
        self.base = base
        self.count = count
    }

    deinit {
        for i in 0..<count {
            if let p = base[i] { Unmanaged<Event>.fromOpaque(p).release() }
        }
    }

    /// The event in slot `i`, or `nil` if it was taken.
    @inlinable
    public subscript(i: Int) -> Event? {
        precondition(i >= 0 && i < count, "index \(i) out of 0..<\(count)")
        return base[i].map { Unmanaged<Event>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Moves the event in slot `i` out of the batch (to forward or keep it);
    /// `nil` if it was taken already.
    @inlinable
    public mutating func take(_ i: Int) -> Event? {
        precondition(i >= 0 && i < count, "index \(i) out of 0..<\(count)")
        guard let p = base[i] else { return nil }
        base[i] = nil
        return Unmanaged<Event>.fromOpaque(p).takeRetainedValue()
    }

    /// Moves every remaining event out, in order.
    public mutating func takeAll() -> [Event] {
        var out: [Event] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            if let e = take(i) { out.append(e) }
        }
        return out
    }

    /// Moves every event still in the batch to `sink`, in order, all or
    /// none, with no reference counting per event: the references the batch
    /// holds go to the sink's queue as they are. The sink's admission
    /// controller sees each event. Throws ``SedaError/rejected(_:)``,
    /// ``SedaError/full`` or ``SedaError/closed`` (the events then stay in
    /// the batch) and ``SedaError/batchTooLarge(count:capacity:)`` when they
    /// outnumber the sink's capacity. On a stage with several priority
    /// classes they go to one class, the most urgent their ``Prioritized``
    /// priorities name, as with ``Sink/enqueueMany(_:)``.
    public mutating func forward(to sink: Sink<Event>) throws(SedaError) {
        // Close the gaps left by take(_:), keeping the order.
        var n = 0
        for i in 0..<count where base[i] != nil {
            base[n] = base[i]
            if n != i { base[i] = nil }
            n += 1
        }
        if n == 0 { return }
        try sink.checkBatch(n)
        let events = UnsafeMutableBufferPointer(start: base, count: n).lazy.map {
            Unmanaged<Event>.fromOpaque($0!).takeUnretainedValue()
        }
        if sink.admission != nil { try sink.admitAll(events) }
        let r =
            sink.batchPriorityClass(events).map { seda_stage_enqueue_many_class(sink.stage.pointer, base, n, $0) }
            ?? seda_stage_enqueue_many(sink.stage.pointer, base, n)
        if r < 0 {
            sink.undoAll(events)
            throw SedaError(code: r)
        }
        for i in 0..<n { base[i] = nil }
    }

    /// Calls `body` with each event still in the batch, in order.
    @inlinable
    public func forEach(_ body: (Event) throws -> Void) rethrows {
        for i in 0..<count {
            if let p = base[i] { try body(Unmanaged<Event>.fromOpaque(p).takeUnretainedValue()) }
        }
    }
}
