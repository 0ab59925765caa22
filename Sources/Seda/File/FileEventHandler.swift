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
        let sh = try addCEventStage(
            name, options: options, c: options.commonCOptions,
            box: FileHandlerBox(handler: handler, logger: stageLogger), drop: dropFileEvent,
            eventType: ObjectIdentifier(FileStageEvents.self), eventTypeName: "FileEvent", kind: "file event stage")
        return FileEventStage(name: name, handle: sh)
    }
}

// MARK: - The bridge from C threads to file event handlers

final class FileHandlerBox<H: FileEventHandler>: AnyCEventHandlerBox, @unchecked Sendable {
    // @unchecked: H is Sendable; the box is immutable.
    let handler: H

    init(handler: H, logger: Logger) {
        self.handler = handler
        super.init(logger: logger)
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

// A plain C function pointer, defined outside any actor: C threads call it.
private let dropFileEvent: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, event in
    seda_file_event_release(event!.assumingMemoryBound(to: seda_file_event_t.self))
}
