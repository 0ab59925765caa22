import CSedaCore
import Glibc
import Logging

/// Sandstorm's system manager: creates stages, looks them up by name,
/// destroys them while others run, and shuts the whole graph down.
///
/// The runtime owns every thread (the C core's shared per-CPU threads and
/// each blocking stage's pool); handlers never create threads of their own.
/// It starts its threads when created. With the `SedaServiceLifecycle`
/// product it is a swift-service-lifecycle `Service`, whose `run()` waits
/// for a graceful shutdown (SIGTERM in a `ServiceGroup`) and then drains the
/// graph.
///
/// Shut a runtime down with ``shutdown(_:timeout:)``. A runtime released
/// without a shutdown does not lose its events silently: its deinit drains
/// the graph for at most ``deinitDrainTimeout``, then logs (at error level)
/// how many events each stage had to give back unprocessed; a drain that
/// completes is logged at notice level. That holds even when the last
/// reference goes on one of the runtime's own threads (a handler that held
/// it): the drain then runs on a thread of its own.
///
/// After a shutdown, ``snapshot()`` keeps returning every stage's final
/// counters: the totals are readable once the graph has stopped.
///
/// Thread rules: every method may be called from any thread; ``shutdown(_:timeout:)``
/// and ``destroyStage(named:mode:)`` block their caller and must not be
/// called from a handler of the stages they wait for.
public final class Runtime: @unchecked Sendable {
    // @unchecked: the C runtime is safe for concurrent use; `handle` never changes.
    let handle: OpaquePointer
    /// The clock timers, statistics and controllers read.
    public let clock: SedaClock
    /// Where the runtime and its stages log.
    public let logger: Logger
    let registry = Lock<[String: Registration]>([:])
    /// Stage watchers (see ``watch(stage:notify:)``), alive as long as the runtime.
    let watchers = Lock<[StageWatcher]>([])
    /// Every stage's counters as the shutdown left them (see ``snapshot()``).
    let finalSnapshot = Lock<RuntimeSnapshot?>(nil)
    /// Where the C core's log messages go (``logger``), kept alive with the runtime.
    let coreLog: CoreLog
    /// Creation order of the stages, for snapshots taken from the registry.
    let stagesAdded = AtomicInt()

    /// How long a runtime released without ``shutdown(_:timeout:)`` drains
    /// before it gives back what is left (and logs it).
    public static let deinitDrainTimeout: Duration = .seconds(5)

    struct Registration: @unchecked Sendable {
        // @unchecked: StageHandle is Sendable; ObjectIdentifier and String are.
        let stage: StageHandle
        let eventType: ObjectIdentifier
        let eventTypeName: String
        let options: StageOptions
        /// Its place in creation order.
        let order: Int
    }

    /// Creates a runtime and starts its shared threads.
    /// - Parameters:
    ///   - cpuThreads: threads in the shared thread manager (`nil`: one per
    ///     CPU the process may run on: its affinity mask, as a cpuset
    ///     container restricts it).
    ///   - pinThreads: pin shared thread *i* to the *i*-th CPU the process
    ///     may run on (wrapping), not to CPU number *i*.
    ///   - clock: the clock to read (``SedaClock/manual(startingAt:)`` in tests).
    ///   - logger: where the runtime and its stages log (each stage's
    ///     messages carry `stage` metadata).
    ///   - poller: the poller every shared thread's loop waits in (sockets,
    ///     see ``PollerBackend``); `.default` takes the `SEDA_POLLER`
    ///     environment variable, else the built-in default.
    public init(
        cpuThreads: Int? = nil, pinThreads: Bool = false, clock: SedaClock = .monotonic,
        logger: Logger = Logger(label: "seda"), poller: PollerBackend = .default
    ) throws(SedaError) {
        if let n = cpuThreads, n < 1 || n > SedaLimits.threads {
            throw .invalidConfiguration("cpuThreads \(n) is not in 1...\(SedaLimits.threads)")
        }
        var opts = seda_runtime_options_t()
        opts.cpu_threads = UInt32(cpuThreads ?? 0)
        opts.pin_threads = pinThreads ? 1 : 0
        opts.clock = clock.pointer
        opts.poller = poller.cValue
        let coreLog = CoreLog(logger)
        opts.log = CoreLog.hook
        opts.log_ctx = coreLog.context
        var rt: OpaquePointer?
        // Creation may log (a poller fallback): the hook's target must live.
        _ = try SedaError.check(withExtendedLifetime(coreLog) { seda_runtime_create(&rt, &opts) })
        handle = rt!
        self.clock = clock
        self.logger = logger
        self.coreLog = coreLog
        LiveRuntimes.add(self)
    }

    deinit {
        LiveRuntimes.remove(self)
        let release = release(why: "runtime released")
        if release.run() { return }
        // The last reference went on one of the runtime's own threads (a
        // handler held it): stopping the runtime here would wait for this
        // very thread. Finish on a thread of its own.
        do throws(SedaError) {
            try SedaThread.detached(name: "seda-release") { _ = release.run() }
        } catch {
            logger.error(
                "runtime released on its own thread and no thread could finish it: it is leaked",
                metadata: ["error": "\(error)"])
        }
    }

    /// Threads in the shared thread manager.
    public var cpuThreads: Int { Int(seda_runtime_cpu_threads(handle)) }

    /// Adds a stage driven by `handler` and returns its sink; `admission`
    /// guards every sink of the stage (see ``AdmissionController``). The handler's
    /// ``EventHandler/setUp(_:)`` runs first, on this thread; if it throws,
    /// no stage is created. Throws ``SedaError/stageExists(_:)`` for a taken
    /// name and ``SedaError/invalidConfiguration(_:)`` for bad options or a
    /// bad name: 1 to ``SedaLimits/stageNameBytes`` bytes, without `.` (a
    /// configuration key names a stage between dots).
    @discardableResult
    public func addStage<H: EventHandler>(
        _ name: String, handler: H,
        options: StageOptions = StageOptions(),
        admission: (any AdmissionController<H.Event>)? = nil
    ) throws -> Sink<H.Event> {
        try Self.checkStageName(name)
        try options.validate(stage: name)
        if let t = options.boundThread, t >= cpuThreads {
            throw SedaError.invalidConfiguration("stage '\(name)': boundThread \(t) is not a shared thread")
        }
        if registry.withLock({ $0[name] != nil }) { throw SedaError.stageExists(name) }
        try handler.setUp(StageContext(name: name, options: options, runtime: self))
        var stageLogger = logger
        stageLogger[metadataKey: "stage"] = "\(name)"
        let admissionBox = admission.map { AdmissionBox($0) }
        let box = HandlerBox(handler: handler, logger: stageLogger, admission: admissionBox)
        let ctx = Unmanaged.passRetained(box as AnyHandlerBox).toOpaque()

        var o = options.commonCOptions
        if let t = options.boundThread {
            o.bind_to_thread = 1
            o.thread_index = UInt32(t)
        }
        o.classes = UInt32(options.priorityClasses)
        o.pause_when_clogged = options.pauseWhenDownstreamClogged ? 1 : 0
        if case .codel(let target, let interval) = options.discipline {
            o.discipline = Int32(SEDA_DISCIPLINE_CODEL.rawValue)
            o.codel_target_ns = target.saturatingNanoseconds
            o.codel_interval_ns = interval.saturatingNanoseconds
        }
        o.handler = runHandler
        o.ctx = ctx
        o.drop = dropEvent
        o.drop_control = dropControlEvent
        o.destroy = destroyHandler
        var stage: OpaquePointer?
        let r = name.withCString { cname in
            o.name = cname
            return seda_stage_create(handle, &o, &stage)
        }
        if r < 0 {
            // The C core never calls back on failure: the box is still ours.
            Unmanaged<AnyHandlerBox>.fromOpaque(ctx).release()
            handler.tearDown()
            throw r == -EEXIST ? SedaError.stageExists(name) : SedaError(code: r)
        }
        let sh = StageHandle(
            adopting: stage!, clock: clock, admission: admissionBox,
            priority: PriorityRouting(H.Event.self, classes: options.priorityClasses))
        let order = stagesAdded.add(1)
        registry.withLock {
            $0[name] = Registration(
                stage: sh, eventType: ObjectIdentifier(H.Event.self),
                eventTypeName: "\(H.Event.self)", options: options, order: order)
        }
        logger.debug("stage added", metadata: ["stage": "\(name)", "options": "\(options)"])
        return Sink(stage: sh)
    }

    /// The sink of the stage called `name`, checked against its event type.
    public func sink<Event>(named name: String, of type: Event.Type = Event.self) throws(SedaError) -> Sink<Event> {
        let reg = registry.withLock { $0[name] }
        guard let reg else { throw .noSuchStage(name) }
        guard reg.eventType == ObjectIdentifier(Event.self) else {
            throw .eventTypeMismatch(stage: name, expected: "\(Event.self)", actual: reg.eventTypeName)
        }
        return Sink(stage: reg.stage)
    }

    /// Throws unless `name` can name a stage: 1 to
    /// ``SedaLimits/stageNameBytes`` bytes, without `.`.
    static func checkStageName(_ name: String) throws(SedaError) {
        guard !name.isEmpty, name.utf8.count <= SedaLimits.stageNameBytes else {
            throw .invalidConfiguration(
                "stage name '\(name)' is \(name.utf8.count) bytes: it must be 1 to \(SedaLimits.stageNameBytes)")
        }
        guard !name.contains(".") else {
            throw .invalidConfiguration(
                "stage name '\(name)' contains '.': configuration keys name a stage between dots "
                    + "(seda.stages.<name>.threads), so a stage name cannot hold one; use '-' or '_'")
        }
    }

    /// The names of the live stages.
    public var stageNames: [String] { registry.withLock { Array($0.keys) }.sorted() }

    /// Destroys a stage while the others run: later enqueues throw
    /// ``SedaError/closed``; `.drain` processes what is queued first,
    /// `.handBack` releases it; then the handler's ``EventHandler/tearDown()``
    /// runs. Blocks until done. Throws ``SedaError/wouldDeadlock`` when called
    /// from the stage's own handler, or for a shared-thread stage from any
    /// handler on the shared threads (do it from another thread or from a
    /// dedicated stage).
    public func destroyStage(named name: String, mode: ShutdownMode = .drain) throws(SedaError) {
        let reg = registry.withLock { $0[name] }
        guard let reg else { throw .noSuchStage(name) }
        let r = seda_stage_destroy(reg.stage.pointer, mode.cValue)
        if r == 0 || r == -EPIPE {  // gone (now, or by a concurrent destroy)
            _ = registry.withLock { $0.removeValue(forKey: name) }
        }
        _ = try SedaError.check(r)
        logger.debug("stage destroyed", metadata: ["stage": "\(name)"])
    }

    /// Resizes a blocking stage's pool (1...maxThreads) while it runs.
    public func setThreads(_ n: Int, forStage name: String) throws(SedaError) {
        let reg = registry.withLock { $0[name] }
        guard let reg else { throw .noSuchStage(name) }
        guard n >= 1, n <= Int(UInt32.max) else { throw .invalidArgument }
        _ = try SedaError.check(seda_stage_set_threads(reg.stage.pointer, UInt32(n)))
    }

    /// Sets the largest batch a stage's handler gets (1 to
    /// ``SedaLimits/batchSize``) while it runs: the knob a batching
    /// controller turns.
    public func setBatchSize(_ n: Int, forStage name: String) throws(SedaError) {
        let reg = registry.withLock { $0[name] }
        guard let reg else { throw .noSuchStage(name) }
        guard n >= 1, n <= SedaLimits.batchSize else { throw .invalidArgument }
        _ = try SedaError.check(seda_stage_set_batch_max(reg.stage.pointer, UInt32(n)))
    }

    /// Stops the runtime: enqueues from outside the runtime's threads fail at
    /// once; `.drain` waits (at most `timeout`) until the whole graph has
    /// processed what it accepted, cycles included, then whatever is left is
    /// released; every thread is joined and every handler torn down. Throws
    /// ``SedaError/timedOut`` if the drain did not finish in time (the rest
    /// was released) and ``SedaError/closed`` if already shut down. Blocks.
    public func shutdown(_ mode: ShutdownMode = .drain, timeout: Duration? = nil) throws(SedaError) {
        let ns = timeoutNanoseconds(timeout)
        logger.debug("runtime shutting down", metadata: ["mode": "\(mode)"])
        let r = seda_runtime_shutdown(handle, mode.cValue, ns)
        if r != -EPIPE && r != -EDEADLK && r != -EINVAL {  // this call stopped the runtime
            let stages = registry.withLock { regs in
                defer { regs.removeAll() }
                return regs.values.sorted { $0.order < $1.order }
            }
            keepFinalSnapshot(stages)
        }
        _ = try SedaError.check(r)
    }
}

// MARK: - The bridge from C threads to Swift handlers

class AnyHandlerBox: @unchecked Sendable {
    func run(_ events: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ count: Int) -> Int32 {
        preconditionFailure("abstract")
    }

    /// An event the stage gives back instead of processing: tell admission,
    /// then release it.
    func drop(_ event: UnsafeMutableRawPointer) {
        Unmanaged<AnyObject>.fromOpaque(event).release()
    }

    /// A control event given back: it never passed admission, so admission
    /// does not hear of it.
    final func dropControl(_ event: UnsafeMutableRawPointer) {
        Unmanaged<AnyObject>.fromOpaque(event).release()
    }

    func tearDown() {}
}

final class HandlerBox<H: EventHandler>: AnyHandlerBox, @unchecked Sendable {
    // @unchecked: H is Sendable and Logger is; the box is immutable.
    let handler: H
    let logger: Logger
    let admission: AdmissionBox<H.Event>?

    init(handler: H, logger: Logger, admission: AdmissionBox<H.Event>?) {
        self.handler = handler
        self.logger = logger
        self.admission = admission
    }

    override func run(_ events: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ count: Int) -> Int32 {
        if let admission {
            // Control events (timers, stage-state notices, enqueueControl)
            // bypassed admission: the C core knows which ones they are.
            let controls = seda_batch_control_count()
            for i in 0..<count where controls == 0 || seda_batch_is_control(i) == 0 {
                admission.controller.left(Unmanaged<H.Event>.fromOpaque(events[i]!).takeUnretainedValue())
            }
        }
        var batch = EventBatch<H.Event>(base: events, count: count)
        do {
            try handler.handle(&batch)
            return 0
        } catch {
            logger.warning("handler threw; the thread carries on", metadata: ["error": "\(error)"])
            return -1
        }
    }

    override func drop(_ event: UnsafeMutableRawPointer) {
        let e = Unmanaged<H.Event>.fromOpaque(event)
        admission?.controller.left(e.takeUnretainedValue())
        e.release()
    }

    override func tearDown() {
        handler.tearDown()
    }
}

// Plain C function pointers, defined outside any actor: C threads call them.
private let runHandler:
    @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int) -> Int32 = {
        ctx, events, count in
        Unmanaged<AnyHandlerBox>.fromOpaque(ctx!).takeUnretainedValue().run(events!, count)
    }

private let dropEvent: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { ctx, event in
    Unmanaged<AnyHandlerBox>.fromOpaque(ctx!).takeUnretainedValue().drop(event!)
}

private let dropControlEvent: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = {
    ctx, event in
    Unmanaged<AnyHandlerBox>.fromOpaque(ctx!).takeUnretainedValue().dropControl(event!)
}

private let destroyHandler: @convention(c) (UnsafeMutableRawPointer?) -> Void = { ctx in
    let box = Unmanaged<AnyHandlerBox>.fromOpaque(ctx!).takeRetainedValue()
    box.tearDown()
}
