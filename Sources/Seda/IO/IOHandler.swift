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
        let box = IOHandlerBox(handler: handler, logger: stageLogger)
        let ctx = Unmanaged.passRetained(box as AnyIOHandlerBox).toOpaque()
        var o = seda_stage_options_t()
        o.queue_capacity = options.queueCapacity
        o.batch_max = UInt32(options.batchSize)
        switch options.threadManager {
        case .shared(let c):
            o.thread_manager = Int32(SEDA_THREADS_SHARED.rawValue)
            o.concurrency = UInt32(c)
        case .dedicated(let t, let m):
            o.thread_manager = Int32(SEDA_THREADS_DEDICATED.rawValue)
            o.concurrency = UInt32(t)
            o.max_threads = UInt32(m ?? t)
        }
        if let i = bound {
            o.bind_to_thread = 1
            o.thread_index = UInt32(i)
        }
        o.handler = runIOHandler
        o.ctx = ctx
        o.drop = dropIOEvent
        o.destroy = destroyIOHandler
        var stage: OpaquePointer?
        let r = name.withCString { cname in
            o.name = cname
            return seda_stage_create(handle, &o, &stage)
        }
        if r < 0 {
            Unmanaged<AnyIOHandlerBox>.fromOpaque(ctx).release()
            handler.tearDown()
            throw r == -EEXIST ? SedaError.stageExists(name) : SedaError(code: r)
        }
        let sh = StageHandle(adopting: stage!, clock: clock)
        let order = stagesAdded.add(1)
        registry.withLock {
            $0[name] = Registration(
                stage: sh, eventType: ObjectIdentifier(IOStageEvents.self),
                eventTypeName: "IOEvent", options: options, order: order)
        }
        logger.debug("I/O stage added", metadata: ["stage": "\(name)", "options": "\(options)"])
        return sh
    }
}

// MARK: - The bridge from C threads to I/O handlers

class AnyIOHandlerBox: @unchecked Sendable {
    func run(_ events: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ count: Int) -> Int32 {
        preconditionFailure("abstract")
    }
    func tearDown() {}
}

final class IOHandlerBox<H: IOHandler>: AnyIOHandlerBox, @unchecked Sendable {
    // @unchecked: H is Sendable and Logger is; the box is immutable.
    let handler: H
    let logger: Logger

    init(handler: H, logger: Logger) {
        self.handler = handler
        self.logger = logger
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

// Plain C function pointers, defined outside any actor: C threads call them.
private let runIOHandler:
    @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int) -> Int32 = {
        ctx, events, count in
        Unmanaged<AnyIOHandlerBox>.fromOpaque(ctx!).takeUnretainedValue().run(events!, count)
    }

private let dropIOEvent: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, event in
    seda_io_event_release(event!.assumingMemoryBound(to: seda_io_event_t.self))
}

private let destroyIOHandler: @convention(c) (UnsafeMutableRawPointer?) -> Void = { ctx in
    Unmanaged<AnyIOHandlerBox>.fromOpaque(ctx!).takeRetainedValue().tearDown()
}
