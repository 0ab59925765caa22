import CSedaCore
import Glibc
import Logging

/// The logic of a stage that receives file completions (``FileEvent``): the
/// sink a file request names with ``FileSink/stage(_:)``.
///
/// Thread rules as for ``EventHandler``: a C thread of the runtime calls
/// ``handle(_:)`` (with the default options a shared thread, often the file
/// stage's home worker, right after it reaped the completions), never two at
/// once for one stage unless its options allow concurrency, never on an
/// actor. It may make new file requests (they are accepted without
/// blocking) but must not block. ``tearDown()`` runs once after the last call.
public protocol FileEventHandler: Sendable {
    /// Handles a batch of completions, oldest first. Events left in the
    /// batch are released when it returns (a pooled read buffer goes back to
    /// its pool); ``FileEventBatch/take(_:)`` keeps one longer. A thrown
    /// error is counted in the stage's statistics and logged; the thread
    /// carries on.
    func handle(_ batch: inout FileEventBatch) throws

    /// Called once when the stage is destroyed or the runtime shuts down.
    func tearDown()
}

extension FileEventHandler {
    public func tearDown() {}
}

/// A stage of ``FileEventHandler``s: the sink for file completions
/// (``FileSink/stage(_:)``). Destroy it with ``Runtime/destroyStage(named:mode:)``
/// like any stage; completions of requests still in flight then are released.
///
/// Thread rules: immutable; use it from any thread.
public final class FileEventStage: @unchecked Sendable {
    // @unchecked: immutable after init; the C stage is safe for concurrent use.
    /// The stage's name.
    public let name: String
    let handle: StageHandle

    init(name: String, handle: StageHandle) {
        self.name = name
        self.handle = handle
    }
}

/// A type no application can name: the event type file event stages are
/// registered under, so that ``Runtime/sink(named:of:)`` never hands out a
/// `Sink` that would enqueue Swift objects into a stage of C events.
final class FileStageEvents: Sendable {}

extension Runtime {
    /// Adds a stage whose handler receives file completions. `options`
    /// choose its queue, batch and threads as for any stage (the default: the
    /// shared threads, one call at a time). Throws
    /// ``SedaError/stageExists(_:)`` or ``SedaError/invalidConfiguration(_:)``
    /// (a bad name or options). Any thread.
    @discardableResult
    public func addFileEventStage<H: FileEventHandler>(
        _ name: String, options: StageOptions = StageOptions(), handler: H
    ) throws -> FileEventStage {
        try Self.checkStageName(name)
        try options.validate(stage: name)
        if registry.withLock({ $0[name] != nil }) { throw SedaError.stageExists(name) }
        var stageLogger = logger
        stageLogger[metadataKey: "stage"] = "\(name)"
        let box = FileHandlerBox(handler: handler, logger: stageLogger)
        let ctx = Unmanaged.passRetained(box as AnyFileHandlerBox).toOpaque()
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
        if let cpu = options.pinCPU {
            o.pin_to_cpu = 1
            o.pin_cpu = Int32(cpu)
        }
        o.handler = runFileHandler
        o.ctx = ctx
        o.drop = dropFileEvent
        o.destroy = destroyFileHandler
        var stage: OpaquePointer?
        let r = name.withCString { cname in
            o.name = cname
            return seda_stage_create(handle, &o, &stage)
        }
        if r < 0 {
            // The C core never calls back on failure: the box is still ours.
            Unmanaged<AnyFileHandlerBox>.fromOpaque(ctx).release()
            handler.tearDown()
            throw r == -EEXIST ? SedaError.stageExists(name) : SedaError(code: r)
        }
        let sh = StageHandle(adopting: stage!, clock: clock)
        let order = stagesAdded.add(1)
        registry.withLock {
            $0[name] = Registration(
                stage: sh, eventType: ObjectIdentifier(FileStageEvents.self),
                eventTypeName: "FileEvent", options: options, order: order)
        }
        logger.debug("file event stage added", metadata: ["stage": "\(name)", "options": "\(options)"])
        return FileEventStage(name: name, handle: sh)
    }
}

// MARK: - The bridge from C threads to file event handlers

class AnyFileHandlerBox: @unchecked Sendable {
    func run(_ events: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ count: Int) -> Int32 {
        preconditionFailure("abstract")
    }
    func tearDown() {}
}

final class FileHandlerBox<H: FileEventHandler>: AnyFileHandlerBox, @unchecked Sendable {
    // @unchecked: H is Sendable and Logger is; the box is immutable.
    let handler: H
    let logger: Logger

    init(handler: H, logger: Logger) {
        self.handler = handler
        self.logger = logger
    }

    override func run(_ events: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ count: Int) -> Int32 {
        var batch = FileEventBatch(base: events, count: count)
        do {
            try handler.handle(&batch)
            return 0
        } catch {
            logger.warning("file event handler threw; the thread carries on", metadata: ["error": "\(error)"])
            return -1
        }
    }

    override func tearDown() { handler.tearDown() }
}

// Plain C function pointers, defined outside any actor: C threads call them.
private let runFileHandler:
    @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int) -> Int32 = {
        ctx, events, count in
        Unmanaged<AnyFileHandlerBox>.fromOpaque(ctx!).takeUnretainedValue().run(events!, count)
    }

private let dropFileEvent: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, event in
    seda_file_event_release(event!.assumingMemoryBound(to: seda_file_event_t.self))
}

private let destroyFileHandler: @convention(c) (UnsafeMutableRawPointer?) -> Void = { ctx in
    Unmanaged<AnyFileHandlerBox>.fromOpaque(ctx!).takeRetainedValue().tearDown()
}
