import CSedaCore
import Glibc

/// Where a file request's completion goes (`seda_file_sink_t`): each
/// accepted request delivers exactly one completion there.
public enum FileSink: Sendable {
    /// Enqueued on a stage of ``FileEventHandler``s: its handler gets the
    /// completion in a ``FileEventBatch``. While the stage's queue is full
    /// the completion is kept and offered again about every millisecond
    /// (completions to one stage may therefore arrive out of order). The
    /// stage is kept alive until the completion is delivered; one destroyed
    /// meanwhile never gets it (it is released).
    case stage(FileEventStage)
    /// Called on a thread of the file stage (its home worker, a shared
    /// thread of the runtime; or a pool thread), which must not block: hand
    /// the event on (to a `Sink`, a continuation) and return. The closure is
    /// kept until its completion is delivered.
    case callback(@Sendable (consuming TakenFileEvent) -> Void)

    /// Calls `body` with the C sink and the tag's pointer; if `body` returns
    /// a negative code (refused: no completion will come), what the sink
    /// retained for the completion is released.
    func withCSink(tag: UInt64, _ body: (UnsafePointer<seda_file_sink_t>, UnsafeMutableRawPointer?) -> Int32)
        -> Int32
    {
        let user = UnsafeMutableRawPointer(bitPattern: UInt(tag))
        var s = seda_file_sink_t()
        switch self {
        case .stage(let stage):
            // The C core retains the stage from acceptance to delivery.
            s.stage = stage.handle.pointer
            return withExtendedLifetime(stage) { body(&s, user) }
        case .callback(let fn):
            let ctx = Unmanaged.passRetained(FileCallbackBox(fn)).toOpaque()
            s.deliver = deliverToCallback
            s.ctx = ctx
            let r = body(&s, user)
            if r < 0 { Unmanaged<FileCallbackBox>.fromOpaque(ctx).release() }
            return r
        }
    }
}

/// A callback sink's closure, retained once per request in flight.
final class FileCallbackBox: Sendable {
    let fn: @Sendable (consuming TakenFileEvent) -> Void
    init(_ fn: @escaping @Sendable (consuming TakenFileEvent) -> Void) { self.fn = fn }
}

// A plain C function (no actor): the file stage's threads call it, once per
// accepted request; it drops that request's reference to the box.
private let deliverToCallback:
    @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<seda_file_event_t>?) -> Void = {
        ctx, ev in
        FileCallbackThread.run {
            // The box (and what its closure holds) is released inside the mark.
            let box = Unmanaged<FileCallbackBox>.fromOpaque(ctx!).takeRetainedValue()
            box.fn(TakenFileEvent(raw: ev!))
        }
    }

/// Marks the threads running a callback sink (a file stage's home worker or
/// pool thread): a ``FileStage`` released there would wait for its own
/// thread, so it is destroyed on a thread of its own instead.
enum FileCallbackThread {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        precondition(pthread_key_create(&k, nil) == 0, "pthread_key_create failed")
        return k
    }()

    /// Whether the calling thread is running a callback sink.
    static var isCurrent: Bool { pthread_getspecific(key) != nil }

    static func run(_ body: () -> Void) {
        let outer = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, outer) }
        body()
    }
}
