import CSedaCore
import Synchronization

/// Why an admission controller refused an event. Counted per stage and per
/// reason (``StageSnapshot/rejectedByReason``) and carried by
/// ``SedaError/rejected(_:)``.
public struct RejectionReason: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { name }

    /// The queue is at or above its admission threshold (Sandstorm's `queueThreshold`).
    public static let queueThreshold = RejectionReason("queueThreshold")
    /// A token bucket is empty.
    public static let rateLimit = RejectionReason("rateLimit")
    /// The response-time controller is shedding load.
    public static let responseTime = RejectionReason("responseTime")
    /// The stage's queue holds too many bytes.
    public static let bytes = RejectionReason("bytes")
}

/// What an admission controller sees of the stage it guards. Reading
/// ``queueLength`` touches the queue's counters (cheap); ``statistics()``
/// copies the stage's histograms (a few KB): call it once per control
/// interval, not per event.
public struct StageProbe: Sendable {
    let stage: StageHandle
    /// The runtime's clock.
    public let clock: SedaClock

    /// The stage's name.
    public var name: String { stage.name }

    /// Events waiting in the queue now (a few loads: fine per enqueue).
    public var queueLength: Int { seda_stage_queue_length(stage.pointer) }

    /// The stage's counters and histograms now.
    public func statistics() -> StageSnapshot { StageSnapshot(stage: stage.pointer) }
}

/// A load-conditioning policy that decides, on the enqueuing thread, whether
/// a stage takes an event: Seda's admission control. It must be cheap (it
/// runs on every enqueue) and thread-safe (every producer calls it at once).
/// Policies compose with ``AdmissionChain``.
///
/// Control events (``Sink/enqueueControl(_:)``, timers) bypass admission:
/// a threshold must never drop the runtime's own events.
public protocol AdmissionController<Event>: Sendable {
    associatedtype Event: AnyObject & Sendable

    /// Returns `nil` to admit the event, or why it is refused. An admitted
    /// event may still be refused by the queue itself (full or closed).
    func admit(_ event: Event, to stage: StageProbe) -> RejectionReason?

    /// Told after an admitted event was refused by the queue, so that a
    /// policy that took a token can give it back. Default: nothing.
    func undo(_ event: Event, at stage: StageProbe)

    /// Told when an admitted event leaves the stage's queue: handed to the
    /// handler, dropped by the queue discipline, or handed back at destroy
    /// or shutdown (on the stage's or the destroying thread, just before).
    /// Policies that account for what the queue holds (bytes) release it
    /// here. Default: nothing. Called only for stages with admission, and
    /// only for events that passed ``admit(_:to:)``: control events
    /// (``Sink/enqueueControl(_:)``, timers, stage-state notices) bypass
    /// admission and never reach it.
    func left(_ event: Event)
}

extension AdmissionController {
    public func undo(_ event: Event, at stage: StageProbe) {}
    public func left(_ event: Event) {}
}

/// An event that knows its size, for per-stage byte limits.
public protocol SizedEvent: AnyObject {
    /// Bytes this event holds (its payload, as the application counts it).
    var sizeInBytes: Int { get }
}

/// A per-stage resource limit: refuses an event that would take the bytes
/// held in the stage's queue above `cap` (``RejectionReason/bytes``). The
/// count rises on admission and falls when the event leaves the queue.
public final class ByteLimit<Event: SizedEvent & Sendable>: AdmissionController, @unchecked Sendable {
    // @unchecked: `held` is an atomic.
    public let cap: Int
    private let held = AtomicInt()

    public init(cap: Int) {
        precondition(cap > 0, "ByteLimit cap must be positive")
        self.cap = cap
    }

    /// Bytes admitted and not yet out of the queue.
    public var bytesHeld: Int { held.load() }

    public func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        let size = event.sizeInBytes
        // Add first, then check: concurrent producers never overshoot the cap.
        if held.add(size) > cap {
            _ = held.add(-size)
            return .bytes
        }
        return nil
    }

    public func undo(_ event: Event, at stage: StageProbe) { _ = held.add(-event.sizeInBytes) }

    public func left(_ event: Event) { _ = held.add(-event.sizeInBytes) }
}

/// Counts rejections by reason for one stage (the rare path: a lock is fine).
final class RejectionCounts: Sendable {
    private let counts = Lock<[String: UInt64]>([:])

    func add(_ reason: RejectionReason) {
        counts.withLock { $0[reason.name, default: 0] += 1 }
    }

    var snapshot: [String: UInt64] { counts.withLock { $0 } }
}

/// What the runtime needs of a stage's admission controller without knowing
/// its event type.
protocol AdmissionBoxing: AnyObject, Sendable {
    /// The state of a response-time controller among the stage's policies.
    var responseTimeState: ResponseTimeControllerState? { get }
}

/// A stage's admission controller, type-erased so that the runtime's
/// registry can hold it; sinks of the stage share it.
final class AdmissionBox<Event: AnyObject & Sendable>: AdmissionBoxing {
    /// Told of every admitted event that leaves the queue; control events,
    /// which bypass admission, never reach it: the handler skips those the C
    /// core marks (`seda_batch_is_control`), and the stage gives them back
    /// through `drop_control`, which does not tell admission.
    let controller: any AdmissionController<Event>
    init(_ controller: any AdmissionController<Event>) { self.controller = controller }

    var responseTimeState: ResponseTimeControllerState? {
        (controller as? any ReportsResponseTime)?.responseTimeState
    }
}

/// Admission policies that run a response-time controller report its state
/// here, for snapshots, metrics and the stage graph (an ``AdmissionChain``
/// reports its first such policy's).
protocol ReportsResponseTime {
    var responseTimeState: ResponseTimeControllerState? { get }
}

/// An atomic Int (Synchronization's Atomic is ~Copyable; a class holds it).
final class AtomicInt: Sendable {
    private let value = Atomic<Int>(0)
    /// Adds and returns the new value.
    func add(_ n: Int) -> Int { value.wrappingAdd(n, ordering: .relaxed).newValue }
    func load() -> Int { value.load(ordering: .relaxed) }
}
