import CSedaCore
import Glibc

/// A stage's load changed: delivered to the stage that watches it
/// (``Runtime/watch(stage:notify:)``), for application-level backpressure
/// (slow a producer down, shed elsewhere, raise an alarm).
public final class StageStateEvent: Sendable, CustomStringConvertible {
    public enum State: Sendable, Equatable {
        /// An enqueue found the stage's queue full.
        case clogged
        /// A clogged stage's queue fell to a quarter of its capacity.
        case drained
    }

    /// The stage whose load changed.
    public let stage: String
    public let state: State

    init(stage: String, state: State) {
        self.stage = stage
        self.state = state
    }

    public var description: String { "\(stage) \(state)" }
}

/// Receives the C core's state callbacks for one watched stage.
final class StageWatcher: @unchecked Sendable {
    // @unchecked: immutable but for the atomic counter.
    let stage: String
    let notify: Sink<StageStateEvent>
    let undelivered = AtomicInt()

    init(stage: String, notify: Sink<StageStateEvent>) {
        self.stage = stage
        self.notify = notify
    }
}

let stageStateCallback: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, Int32) -> Void = { ctx, _, state in
    let w = Unmanaged<StageWatcher>.fromOpaque(ctx!).takeUnretainedValue()
    let event = StageStateEvent(
        stage: w.stage,
        state: state == Int32(SEDA_STAGE_CLOGGED.rawValue) ? .clogged : .drained)
    // A control event: no admission or discipline drops it. If the watcher
    // itself is full or gone, the transition is counted, not lost silently.
    do throws(SedaError) {
        try w.notify.enqueueControl(event)
    } catch {
        _ = w.undelivered.add(1)
    }
}

extension Runtime {
    /// Delivers a ``StageStateEvent`` to `notify` each time stage `name`
    /// becomes clogged (an enqueue found its queue full) or drains again (its
    /// queue fell to a quarter of capacity), once per transition. One
    /// watcher per stage; install it before traffic. Throws
    /// ``SedaError/noSuchStage(_:)``, or ``SedaError/stageAlreadyWatched(_:)``
    /// if the stage has a watcher already.
    public func watch(stage name: String, notify: Sink<StageStateEvent>) throws(SedaError) {
        let reg = registry.withLock { $0[name] }
        guard let reg else { throw .noSuchStage(name) }
        let watcher = StageWatcher(stage: name, notify: notify)
        // The C stage holds only a raw pointer to the watcher: the runtime
        // keeps it for its lifetime once the stage took it (this frame keeps
        // it alive until then, callbacks included). A refused watcher is
        // not kept.
        let r = seda_stage_watch(
            reg.stage.pointer, stageStateCallback, Unmanaged.passUnretained(watcher).toOpaque())
        if r == -EBUSY { throw .stageAlreadyWatched(name) }
        _ = try SedaError.check(r)
        watchers.withLock { $0.append(watcher) }
    }
}
