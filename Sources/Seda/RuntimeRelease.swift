import CSedaCore
import Glibc
import Logging

/// What happens to a runtime nobody shut down: its deinit, or the process
/// exiting while it still runs (a runtime held by a global in `main.swift` is
/// never deinitialised). Either way the graph drains for at most
/// ``Runtime/deinitDrainTimeout``; what it could not process is given back
/// and logged at error level, stage by stage. Nothing is lost silently.
struct RuntimeRelease: @unchecked Sendable {
    // @unchecked: the C runtime and stage handles are safe for concurrent
    // use; Logger is Sendable; nothing here changes.
    let handle: OpaquePointer
    /// The stages, in creation order, held so their counters stay readable.
    let stages: [(name: String, stage: StageHandle)]
    let logger: Logger
    /// The C runtime's log hook target: held while the release runs, which
    /// may outlive the ``Runtime`` (a release finishing on a thread of its own).
    let coreLog: CoreLog
    /// What the log says happened ("runtime released").
    let why: String
    /// How long the drain may take.
    var drainTimeout: Duration = Runtime.deinitDrainTimeout

    /// Drains, reports and (when `destroy`) destroys the C runtime. Returns
    /// false, having done nothing, on one of the runtime's own threads, where
    /// stopping it would wait for the calling thread.
    func run(destroy: Bool = true) -> Bool {
        withExtendedLifetime(coreLog) { drainAndReport(destroy: destroy) }
    }

    private func drainAndReport(destroy: Bool) -> Bool {
        let before = stages.map { StageStatistics(stage: $0.stage.pointer) }
        let r = seda_runtime_shutdown(
            handle, Int32(SEDA_SHUTDOWN_DRAIN.rawValue),
            drainTimeout.saturatingNanoseconds)
        if r == -EDEADLK { return false }
        if r != -EPIPE { report(r, before) }  // -EPIPE: shut down already, nothing to say
        if destroy { seda_runtime_destroy(handle) }
        return true
    }

    private func report(_ r: Int32, _ before: [StageStatistics]) {
        var lost: [(String, UInt64)] = []
        var drained: UInt64 = 0
        for (i, s) in stages.enumerated() {
            let after = StageStatistics(stage: s.stage.pointer)
            drained &+= after.processed &- before[i].processed
            let n = after.handedBack &- before[i].handedBack
            if n > 0 { lost.append((s.name, n)) }
        }
        if lost.isEmpty && r == 0 {
            logger.notice(
                "\(why) without shutdown(): drained it first",
                metadata: [
                    "processed": "\(drained)", "hint": "call shutdown(_:timeout:) to choose how it stops",
                ])
            return
        }
        let total = lost.reduce(UInt64(0)) { $0 &+ $1.1 }
        var metadata: Logger.Metadata = [
            "processed": "\(drained)", "discarded": "\(total)",
            "drain": r == 0 ? "complete" : "\(SedaError(code: r)) after \(drainTimeout)",
        ]
        for (name, n) in lost { metadata["stage.\(name)"] = "\(n)" }
        logger.error("\(why) without shutdown(): \(total) events given back unprocessed", metadata: metadata)
    }
}

/// The runtimes alive in the process, drained when it exits.
enum LiveRuntimes {
    private struct Weak: @unchecked Sendable {
        // @unchecked: a weak reference to a Sendable class, read under the lock.
        weak var runtime: Runtime?
    }

    private static let all = Lock<[ObjectIdentifier: Weak]>([:])
    private static let hook: Void = {
        atexit { LiveRuntimes.exiting() }
    }()

    static func add(_ runtime: Runtime) {
        _ = hook
        all.withLock { $0[ObjectIdentifier(runtime)] = Weak(runtime: runtime) }
    }

    static func remove(_ runtime: Runtime) {
        _ = all.withLock { $0.removeValue(forKey: ObjectIdentifier(runtime)) }
    }

    /// The process is exiting: every runtime not shut down drains now, for
    /// a bounded time, and reports what it could not process. From one of a
    /// runtime's own threads (exit() called in a handler) that runtime can
    /// only report what it holds.
    private static func exiting() {
        let live = all.withLock { $0.values.compactMap(\.runtime) }
        Runtime.release(live, why: "process exiting with a runtime")
    }
}

extension Runtime {
    /// Drains each runtime that was not shut down, as at process exit (see
    /// ``deinitDrainTimeout``); the C runtimes stay allocated (their Swift
    /// owners may still run).
    static func release(_ runtimes: [Runtime], why: String) {
        for rt in runtimes {
            let release = rt.release(why: why)
            if !release.run(destroy: false) {
                let queued = release.stages.reduce(0) { $0 + seda_stage_queue_length($1.stage.pointer) }
                rt.logger.error("\(why), exiting from one of its own handlers: \(queued) queued events are lost")
            }
        }
    }

    /// The release of this runtime, over the stages it has now.
    func release(why: String) -> RuntimeRelease {
        let stages = registry.withLock { regs in
            regs.sorted { $0.value.order < $1.value.order }.map { (name: $0.key, stage: $0.value.stage) }
        }
        return RuntimeRelease(handle: handle, stages: stages, logger: logger, coreLog: coreLog, why: why)
    }
}
