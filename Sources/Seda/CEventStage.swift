import CSedaCore
import Glibc
import Logging

// Stages whose events are the C core's own (I/O events, file completions):
// what their kinds share. Each kind keeps its handler protocol, its batch
// type and its box's `run`; the C options, the creation, the registration
// and the C callbacks are here once.

/// The box that carries a handler of C events into the C core (the stage's
/// `ctx`): one subclass per kind of event.
class AnyCEventHandlerBox: @unchecked Sendable {
    // @unchecked: immutable; subclasses hold a Sendable handler.
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Hands the batch to the handler; 0, or -1 if it threw.
    func run(_ events: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ count: Int) -> Int32 {
        preconditionFailure("abstract")
    }

    func tearDown() {}
}

extension StageOptions {
    /// The C options every stage takes from these: queue, batch, thread
    /// manager and CPU pin (the rest is up to the kind of stage).
    var commonCOptions: seda_stage_options_t {
        var o = seda_stage_options_t()
        o.queue_capacity = queueCapacity
        o.batch_max = UInt32(batchSize)
        switch threadManager {
        case .shared(let c):
            o.thread_manager = Int32(SEDA_THREADS_SHARED.rawValue)
            o.concurrency = UInt32(c)
        case .dedicated(let t, let m):
            o.thread_manager = Int32(SEDA_THREADS_DEDICATED.rawValue)
            o.concurrency = UInt32(t)
            o.max_threads = UInt32(m ?? t)
        }
        if let cpu = pinCPU {
            o.pin_to_cpu = 1
            o.pin_cpu = Int32(cpu)
        }
        return o
    }
}

extension Runtime {
    /// Creates the C stage `name` from `c` (its handler, ctx and destroy
    /// set here to `box`'s), with `drop` releasing an event it refuses, and
    /// registers it under `eventType` (a type no application can name, so
    /// that ``sink(named:of:)`` never hands out a `Sink` for it). On failure
    /// the box is torn down (the handler's `tearDown` runs) and the error
    /// thrown. `kind` names the stage in the log.
    func addCEventStage(
        _ name: String, options: StageOptions, c: seda_stage_options_t, box: AnyCEventHandlerBox,
        drop: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void,
        eventType: ObjectIdentifier, eventTypeName: String, kind: String
    ) throws -> StageHandle {
        var o = c
        let ctx = Unmanaged.passRetained(box).toOpaque()
        o.handler = runCEventHandler
        o.ctx = ctx
        o.drop = drop
        o.destroy = destroyCEventHandler
        var stage: OpaquePointer?
        let r = name.withCString { cname in
            o.name = cname
            return seda_stage_create(handle, &o, &stage)
        }
        if r < 0 {
            // The C core never calls back on failure: the box is still ours.
            Unmanaged<AnyCEventHandlerBox>.fromOpaque(ctx).takeRetainedValue().tearDown()
            throw r == -EEXIST ? SedaError.stageExists(name) : SedaError(code: r)
        }
        let sh = StageHandle(adopting: stage!, clock: clock)
        let order = stagesAdded.add(1)
        registry.withLock {
            $0[name] = Registration(
                stage: sh, eventType: eventType, eventTypeName: eventTypeName, options: options, order: order)
        }
        logger.debug("\(kind) added", metadata: ["stage": "\(name)", "options": "\(options)"])
        return sh
    }
}

// Plain C function pointers, defined outside any actor: C threads call them.
private let runCEventHandler:
    @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int) -> Int32 = {
        ctx, events, count in
        Unmanaged<AnyCEventHandlerBox>.fromOpaque(ctx!).takeUnretainedValue().run(events!, count)
    }

private let destroyCEventHandler: @convention(c) (UnsafeMutableRawPointer?) -> Void = { ctx in
    Unmanaged<AnyCEventHandlerBox>.fromOpaque(ctx!).takeRetainedValue().tearDown()
}
