import CSedaCore
import Glibc
import Logging

/// The logic of a stage that receives socket events (``IOEvent``): accepted
/// connections, packets, closes, writability, connect results.
///
/// Thread rules as for ``EventHandler``: a C thread of the runtime calls
/// ``handle(_:)``, never two at once for one stage (a stage replicated per
/// thread has one handler per replica, each called on its own thread only),
/// never on an actor. ``tearDown()`` runs once after the last call.
public protocol IOHandler: Sendable {
    /// Handles a batch of events, oldest first. Events left in the batch are
    /// released when it returns (a packet's buffer goes back to its loop);
    /// ``IOEventBatch/take(_:)`` keeps one longer. A thrown error is counted
    /// in the stage's statistics and logged; the thread carries on.
    func handle(_ batch: inout IOEventBatch) throws

    /// Called once when the stage is destroyed or the runtime shuts down.
    func tearDown()
}

extension IOHandler {
    public func tearDown() {}
}

/// How many copies of an I/O stage run.
public enum IOStageReplicas: Sendable, Equatable {
    /// One stage, on the shared threads (or a dedicated pool).
    case single
    /// One replica per shared thread, bound to it (named `name-0`,
    /// `name-1`...): a connection's events go to the replica of the thread
    /// that owns it, so its packets, the handler and the writes it makes stay
    /// on one thread with no hand-off. The way to serve connections fast.
    case perThread
}

/// A stage (or a set of replicas, one per shared thread) of ``IOHandler``s:
/// the sink for a listener's or a connection's events.
public final class IOStage: @unchecked Sendable {
    // @unchecked: immutable after init; the C stages are safe for concurrent use.
    /// The stage's name (replicas are `name-i`).
    public let name: String
    /// Its replicas' handles, one per shared thread, or one.
    let handles: [StageHandle]

    init(name: String, handles: [StageHandle]) {
        self.name = name
        self.handles = handles
    }

    /// Whether the stage has one replica per shared thread.
    public var isReplicated: Bool { handles.count > 1 }

    /// The C stage that takes the events of connections owned by shared
    /// thread `thread`.
    func sink(forThread thread: Int) -> OpaquePointer {
        handles.count == 1 ? handles[0].pointer : handles[thread % handles.count].pointer
    }
}

/// A type no application can name: the event type I/O stages are registered
/// under, so that ``Runtime/sink(named:of:)`` never hands out a `Sink` that
/// would enqueue Swift objects into a stage of C events.
final class IOStageEvents: Sendable {}

extension Runtime {
    /// Adds an I/O stage: with `.perThread` one replica per shared thread,
    /// bound to it, each with the handler `makeHandler(i)` returns for
    /// thread `i`; with `.single` one stage with `makeHandler(0)`'s handler
    /// (`options` choose its threads; replicas take the shared threads, one
    /// handler call at a time each). Throws ``SedaError/stageExists(_:)`` or
    /// ``SedaError/invalidConfiguration(_:)``; if a replica cannot be
    /// created, those made before are destroyed.
    @discardableResult
    public func addIOStage<H: IOHandler>(
        _ name: String, replicas: IOStageReplicas = .perThread,
        options: StageOptions = StageOptions(), makeHandler: (Int) throws -> H
    ) throws -> IOStage {
        try Self.checkStageName(name)
        try options.validate(stage: name)
        if replicas == .perThread, options.threadManager != .shared(concurrency: 1) {
            throw SedaError.invalidConfiguration(
                "stage '\(name)': replicas per thread run on the shared threads, one call at a time")
        }
        let count = replicas == .perThread ? cpuThreads : 1
        var handles: [StageHandle] = []
        var names: [String] = []
        do {
            for i in 0..<count {
                let stageName = replicas == .perThread ? "\(name)-\(i)" : name
                try Self.checkStageName(stageName)
                if registry.withLock({ $0[stageName] != nil }) { throw SedaError.stageExists(stageName) }
                let handler = try makeHandler(i)
                handles.append(
                    try addIOReplica(
                        stageName, handler: handler, options: options, bound: replicas == .perThread ? i : nil))
                names.append(stageName)
            }
        } catch {
            for n in names { try? destroyStage(named: n, mode: .handBack) }
            throw error
        }
        return IOStage(name: name, handles: handles)
    }

    /// One C stage of C events with `handler`, registered under `name`.
    private func addIOReplica<H: IOHandler>(
        _ name: String, handler: H, options: StageOptions, bound: Int?
    ) throws -> StageHandle {
        var stageLogger = logger
        stageLogger[metadataKey: "stage"] = "\(name)"
        var c = options.commonCOptions
        if let i = bound {
            c.bind_to_thread = 1
            c.thread_index = UInt32(i)
        }
        return try addCEventStage(
            name, options: options, c: c, box: IOHandlerBox(handler: handler, logger: stageLogger), drop: dropIOEvent,
            eventType: ObjectIdentifier(IOStageEvents.self), eventTypeName: "IOEvent", kind: "I/O stage")
    }
}

// MARK: - The bridge from C threads to I/O handlers

final class IOHandlerBox<H: IOHandler>: AnyCEventHandlerBox, @unchecked Sendable {
    // @unchecked: H is Sendable; the box is immutable.
    let handler: H

    init(handler: H, logger: Logger) {
        self.handler = handler
        super.init(logger: logger)
    }

    override func run(_ events: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ count: Int) -> Int32 {
        var batch = IOEventBatch(base: events, count: count)
        do {
            try handler.handle(&batch)
            return 0
        } catch {
            logger.warning("I/O handler threw; the thread carries on", metadata: ["error": "\(error)"])
            return -1
        }
    }

    override func tearDown() { handler.tearDown() }
}

// A plain C function pointer, defined outside any actor: C threads call it.
private let dropIOEvent: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, event in
    seda_io_event_release(event!.assumingMemoryBound(to: seda_io_event_t.self))
}
