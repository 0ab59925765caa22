import CSedaCore
import Glibc

/// A bounded, lock-free, multi-producer multi-consumer queue of class
/// instances: the event queue that separates two stages, over the C core's
/// `seda_queue_t`.
///
/// An event is retained when the queue accepts it and handed back, with that
/// retain, when it is dequeued; an enqueue that fails leaves the event with
/// the caller. Deinitialising the queue releases every event still in it.
///
/// Thread rules: every method may be called from any thread at the same time.
/// ``dequeue(max:timeout:)`` blocks its thread and must not be called from an
/// `async` context (Swift's cooperative pool has one thread per CPU).
public final class EventQueue<Element: AnyObject & Sendable>: @unchecked Sendable {
    // @unchecked: the C queue is safe for concurrent use; `handle` never changes.
    @usableFromInline let handle: OpaquePointer

    /// Creates a queue holding at most `capacity` events, rounded up to a
    /// power of two (at least 2); ``capacity`` reads the result back.
    /// Throws ``SedaError/invalidArgument`` for a capacity of 0 or above
    /// `SEDA_QUEUE_MAX_CAPACITY`.
    public init(capacity: Int) throws(SedaError) {
        guard capacity > 0 else { throw .invalidArgument }
        var q: OpaquePointer?
        _ = try SedaError.check(seda_queue_create(&q, capacity, nil))
        handle = q!
    }

    deinit {
        // No other thread can hold a reference now: drain and free.
        seda_queue_destroy(
            handle,
            { _, event in
                Unmanaged<AnyObject>.fromOpaque(event!).release()
            }, nil)
    }

    /// The number of events the queue holds when full.
    public var capacity: Int { seda_queue_capacity(handle) }

    /// Events accepted and not yet taken: a snapshot.
    public var count: Int { seda_queue_size(handle) }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { seda_queue_is_closed(handle) != 0 }

    /// Enqueues one event. Throws ``SedaError/full`` or ``SedaError/closed``;
    /// on a throw the event was not retained by the queue.
    @inlinable
    public func enqueue(_ event: Element) throws(SedaError) {
        let ptr = Unmanaged.passRetained(event).toOpaque()
        let r = seda_queue_enqueue(handle, ptr)
        if r < 0 {
            Unmanaged<Element>.fromOpaque(ptr).release()
            throw SedaError(code: r)
        }
    }

    /// Enqueues every event, in order and at consecutive positions, or none:
    /// throws ``SedaError/full`` when fewer slots are free,
    /// ``SedaError/closed``, or ``SedaError/batchTooLarge(count:capacity:)``
    /// when there are more events than ``capacity``.
    public func enqueue<C: Collection>(contentsOf events: C) throws(SedaError) where C.Element == Element {
        let n = events.count
        if n == 0 { return }
        if n > capacity { throw .batchTooLarge(count: n, capacity: capacity) }
        let r: Int32 = withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: n) { buf in
            var i = 0
            for e in events {
                buf[i] = Unmanaged.passRetained(e).toOpaque()
                i += 1
            }
            let r = seda_queue_enqueue_many(handle, buf.baseAddress!, n)
            if r < 0 {
                for j in 0..<n { Unmanaged<Element>.fromOpaque(buf[j]!).release() }
            }
            return r
        }
        _ = try SedaError.check(r)
    }

    /// Dequeues the oldest event, or returns `nil` when the queue is empty.
    /// Throws ``SedaError/closed`` once the queue is closed and drained.
    @inlinable
    public func dequeue() throws(SedaError) -> Element? {
        var ptr: UnsafeMutableRawPointer?
        let r = seda_queue_dequeue(handle, &ptr)
        if r == -EAGAIN { return nil }
        _ = try SedaError.check(r)
        return Unmanaged<Element>.fromOpaque(ptr!).takeRetainedValue()
    }

    /// Dequeues up to `max` of the oldest events, in order, appending them to
    /// `events`; returns how many (0 when empty). Throws ``SedaError/closed``
    /// once the queue is closed and drained.
    @discardableResult
    public func dequeue(max: Int, into events: inout [Element]) throws(SedaError) -> Int {
        guard max > 0 else { throw .invalidArgument }
        return try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max) {
            buf throws(SedaError) -> Int in
            let r = seda_queue_dequeue_many(handle, buf.baseAddress!, nil, max)
            return try Self.take(r, from: buf, into: &events)
        }
    }

    /// Dequeues up to `max` events, in order; empty when the queue is.
    public func dequeue(max: Int) throws(SedaError) -> [Element] {
        var events: [Element] = []
        events.reserveCapacity(Swift.min(max, capacity))
        try dequeue(max: max, into: &events)
        return events
    }

    /// Dequeues up to `max` events, blocking this thread while the queue is
    /// empty, for at most `timeout` (`nil`: no limit). Throws
    /// ``SedaError/timedOut`` or ``SedaError/closed`` (closed and drained).
    /// Parks on the queue's notifier: no CPU is used while waiting.
    public func dequeue(max: Int, timeout: Duration?) throws(SedaError) -> [Element] {
        guard max > 0 else { throw .invalidArgument }
        let ns = timeoutNanoseconds(timeout)
        var events: [Element] = []
        try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max) { buf throws(SedaError) in
            let r = seda_queue_dequeue_wait(handle, buf.baseAddress!, nil, max, ns)
            _ = try Self.take(r, from: buf, into: &events)
        }
        return events
    }

    /// Closes the queue: later enqueues throw ``SedaError/closed``, consumers
    /// drain what was accepted, and threads parked in a dequeue wake up.
    /// Returns `false` if it was already closed.
    @discardableResult
    public func close() -> Bool {
        seda_queue_close(handle) == 0
    }

    private static func take(
        _ r: Int32, from buf: UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>,
        into events: inout [Element]
    ) throws(SedaError) -> Int {
        if r == -EAGAIN { return 0 }
        let n = Int(try SedaError.check(r))
        for i in 0..<n {
            events.append(Unmanaged<Element>.fromOpaque(buf[i]!).takeRetainedValue())
        }
        return n
    }
}
