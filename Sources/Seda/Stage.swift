import CSedaCore

/// The limits on stages and the runtime, in one place (configuration and
/// validation read them here), taken from the C core's headers where it
/// sets them.
public enum SedaLimits {
    /// The longest stage name, in UTF-8 bytes (`SEDA_STAGE_NAME_MAX`).
    public static let stageNameBytes = Int(SEDA_STAGE_NAME_MAX)
    /// The largest batch a handler can be given (`SEDA_BATCH_MAX`).
    public static let batchSize = Int(SEDA_BATCH_MAX)
    /// The largest queue capacity (`SEDA_QUEUE_MAX_CAPACITY`).
    public static let queueCapacity = Int(SEDA_QUEUE_MAX_CAPACITY)
    /// The most strict priority classes a stage can have
    /// (`SEDA_STAGE_MAX_CLASSES`).
    public static let priorityClasses = Int(SEDA_STAGE_MAX_CLASSES)
    /// The most threads of one pool, of the shared thread manager, or
    /// handler calls at once on the shared threads.
    public static let threads = 1024
}

/// Which threads drive a stage.
public enum ThreadManager: Sendable, Equatable {
    /// The runtime's per-CPU threads, shared by every non-blocking stage: a
    /// batch is handled on the thread that dequeued it, with no hand-off.
    /// `concurrency` handler calls may run at once (1: never two).
    case shared(concurrency: Int = 1)
    /// A pool of the stage's own, for handlers that block (disk, sleeping,
    /// locks): `threads` to start with, growable to `maxThreads` while running.
    case dedicated(threads: Int = 1, maxThreads: Int? = nil)
}

/// How a stage's queue behaves under overload.
public enum QueueDiscipline: Sendable, Equatable {
    /// Oldest first; nothing is dropped.
    case fifo
    /// CoDel (RFC 8289): once events have waited longer than `target` for a
    /// whole `interval`, the oldest are dropped at an increasing rate until
    /// the waiting time falls below `target`. Queueing delay stays bounded
    /// under overload; a burst that drains within `interval` loses nothing.
    /// Dropped events are released and counted (``StageSnapshot/dropped``);
    /// control events (``Sink/enqueueControl(_:)``, timers) never are. The
    /// waiting time is an event's own in this queue: a CoDel stage stamps
    /// each event when it enters (see ``StageSnapshot/queueDelay``).
    case codel(target: Duration = .milliseconds(5), interval: Duration = .milliseconds(100))
}

/// A stage's settings. Defaults suit a non-blocking stage.
public struct StageOptions: Sendable, Equatable {
    /// Which threads drive the stage.
    public var threadManager: ThreadManager = .shared()
    /// Events per handler call, at most (Sandstorm's batch size).
    public var batchSize: Int = 64
    /// The queue's capacity (rounded up to a power of two): enqueues beyond it
    /// fail with ``SedaError/full`` (Sandstorm's `queueThreshold`).
    public var queueCapacity: Int = 1024
    /// For a dedicated pool: pin its threads to the `pinCPU`-th CPU the
    /// process may run on (counting from 0 in its affinity mask, wrapping
    /// around), which is CPU number `pinCPU` only on a machine with no
    /// affinity restriction (a cpuset container has one).
    public var pinCPU: Int? = nil
    /// How the queue behaves under overload.
    public var discipline: QueueDiscipline = .fifo
    /// Strict priority classes (1...8): one queue of `queueCapacity` per
    /// class; the handler gets class 0's events first, class 1's only when
    /// class 0 is empty, and so on. Plain enqueues go to the last class,
    /// control events to class 0 (``Sink/enqueue(_:priorityClass:)``).
    public var priorityClasses: Int = 1
    /// Shared thread manager only: while a stage this stage's handler feeds
    /// is clogged (an enqueue into it found it full), this stage is not
    /// scheduled; its events wait in its own queue and backpressure travels
    /// upstream ("refuse to schedule stages upstream from a clogged stage").
    /// Where waiting would close a cycle, the cycle keeps running instead
    /// (its handlers meet full queues and keep or shed as they choose).
    public var pauseWhenDownstreamClogged: Bool = false
    /// Shared thread manager with concurrency 1 only: run the stage on
    /// shared thread `boundThread` alone (0..<``Runtime/cpuThreads``), so its
    /// handler runs on the same thread as that thread's socket handlers and
    /// the other stages bound there, never at the same time as they do (a
    /// per-worker reply stage touching the worker's connections). Enqueues
    /// from other threads wake that thread. nil: any shared thread.
    public var boundThread: Int? = nil

    public init(
        threadManager: ThreadManager = .shared(), batchSize: Int = 64,
        queueCapacity: Int = 1024, pinCPU: Int? = nil, discipline: QueueDiscipline = .fifo,
        priorityClasses: Int = 1, pauseWhenDownstreamClogged: Bool = false
    ) {
        self.pauseWhenDownstreamClogged = pauseWhenDownstreamClogged
        self.threadManager = threadManager
        self.batchSize = batchSize
        self.queueCapacity = queueCapacity
        self.pinCPU = pinCPU
        self.discipline = discipline
        self.priorityClasses = priorityClasses
    }

    /// Checks the values, naming the first bad one.
    public func validate(stage: String) throws(SedaError) {
        func bad(_ what: String) -> SedaError { .invalidConfiguration("stage '\(stage)': \(what)") }
        guard (1...SedaLimits.batchSize).contains(batchSize) else {
            throw bad("batchSize \(batchSize) is not in 1...\(SedaLimits.batchSize)")
        }
        guard queueCapacity >= 1, queueCapacity <= Int(SEDA_QUEUE_MAX_CAPACITY) else {
            throw bad("queueCapacity \(queueCapacity) is not in 1...\(SEDA_QUEUE_MAX_CAPACITY)")
        }
        switch threadManager {
        case .shared(let c):
            guard c >= 1 else { throw bad("concurrency \(c) must be at least 1") }
        case .dedicated(let t, let m):
            guard t >= 1 else { throw bad("threads \(t) must be at least 1") }
            if let m, m < t { throw bad("maxThreads \(m) is below threads \(t)") }
        }
        if let cpu = pinCPU, cpu < 0 { throw bad("pinCPU \(cpu) is negative") }
        if pauseWhenDownstreamClogged, case .dedicated = threadManager {
            throw bad("pauseWhenDownstreamClogged needs the shared thread manager")
        }
        if let t = boundThread {
            guard t >= 0 else { throw bad("boundThread \(t) is negative") }
            guard threadManager == .shared(concurrency: 1) else {
                throw bad("boundThread needs the shared thread manager with concurrency 1")
            }
        }
        guard (1...Int(SEDA_STAGE_MAX_CLASSES)).contains(priorityClasses) else {
            throw bad("priorityClasses \(priorityClasses) is not in 1...\(SEDA_STAGE_MAX_CLASSES)")
        }
        if case .codel(let target, let interval) = discipline,
            target <= .zero || interval <= .zero
        {
            throw bad("codel target \(target) and interval \(interval) must be positive")
        }
    }
}

/// How a stage or the runtime stops.
public enum ShutdownMode: Sendable {
    /// Process everything already accepted (cycles included) first.
    case drain
    /// Process nothing more: queued events are released.
    case handBack

    var cValue: Int32 {
        switch self {
        case .drain: Int32(SEDA_SHUTDOWN_DRAIN.rawValue)
        case .handBack: Int32(SEDA_SHUTDOWN_HAND_BACK.rawValue)
        }
    }
}

/// Owns one reference to a C stage, with what every sink of the stage
/// shares: its admission controller, its rejection counts and how events
/// find their priority class.
@usableFromInline
final class StageHandle: @unchecked Sendable {
    // @unchecked: the C stage is safe for concurrent use; every field is
    // immutable or Sendable.
    @usableFromInline let pointer: OpaquePointer
    let clock: SedaClock
    /// An `AdmissionBox<Event>` for the stage's event type, or nil.
    let admission: (any AdmissionBoxing)?
    let rejections = RejectionCounts()
    /// Events one queue holds (each priority class has one), as the C core
    /// rounded the capacity asked for.
    let queueCapacity: Int
    /// Events of a `Prioritized` type go to the class their priority names.
    let priority: PriorityRouting?

    init(
        adopting pointer: OpaquePointer, clock: SedaClock,
        admission: (any AdmissionBoxing)? = nil, priority: PriorityRouting? = nil
    ) {
        self.pointer = pointer
        self.clock = clock
        self.admission = admission
        self.priority = priority
        queueCapacity = seda_stage_queue_capacity(pointer)
    }

    deinit { seda_stage_release(pointer) }

    var name: String { String(cString: seda_stage_name(pointer)) }
}

/// How a stage with several priority classes finds an event's class: from
/// ``Prioritized/priority``, the same number the per-class admission
/// policies read, so that one notion of priority drives both admission and
/// scheduling. Made only for a `Prioritized` event type and a stage with
/// more than one class.
struct PriorityRouting: Sendable {
    let classes: Int

    init?<Event>(_ type: Event.Type, classes: Int) {
        guard classes > 1, type is any Prioritized.Type else { return nil }
        self.classes = classes
    }

    /// The class of `event`: its priority, clamped to the stage's classes.
    func priorityClass(of event: AnyObject) -> Int {
        guard let p = event as? any Prioritized else { return classes - 1 }
        return min(max(p.priority, 0), classes - 1)
    }
}

/// What a handler's ``EventHandler/setUp(_:)`` gets: its stage's name and
/// options, and the runtime (to find other stages' sinks).
///
/// The context refers to the runtime weakly: a handler that keeps its
/// context does not keep the runtime alive (the runtime owns the handler;
/// a strong reference back would be a cycle, and the runtime would never be
/// released).
public struct StageContext: Sendable {
    public let name: String
    public let options: StageOptions
    private let box: WeakRuntime

    init(name: String, options: StageOptions, runtime: Runtime) {
        self.name = name
        self.options = options
        box = WeakRuntime(runtime)
    }

    /// The runtime, or `nil` once it has been released.
    public var runtime: Runtime? { box.runtime }

    /// The sink of another stage, checked against its event type. Throws
    /// ``SedaError/closed`` once the runtime has been released.
    public func sink<Event>(named name: String, of type: Event.Type = Event.self) throws(SedaError) -> Sink<Event> {
        guard let runtime else { throw .closed }
        return try runtime.sink(named: name, of: type)
    }
}

/// A weak reference to a runtime that can travel between threads.
final class WeakRuntime: @unchecked Sendable {
    // @unchecked: weak references are safe to read from any thread.
    weak var runtime: Runtime?
    init(_ runtime: Runtime) { self.runtime = runtime }
}
