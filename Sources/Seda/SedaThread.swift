import Glibc

/// A POSIX thread of Seda's own: the one place Seda's Swift code starts a
/// thread (the controllers' ticking threads, the service's drain, the
/// runtime's bounded drain at deinit; benchmarks and tests use it through
/// `@_spi(Threads) import Seda`). Stages never need one: the runtime owns
/// the threads that run handlers.
///
/// Not Swift's cooperative pool, which has one thread per CPU and must never
/// block: a ``SedaThread`` may block for as long as its body likes.
///
/// Thread rules: ``join()`` and ``detach()`` may be called from any thread,
/// once between them (a second call does nothing); ``join()`` from the
/// thread itself detaches it instead of deadlocking.
@_spi(Threads)
public final class SedaThread: @unchecked Sendable {
    // @unchecked: `tid` is written once, before init returns, and read only
    // after; `body` is set before the thread starts and then touched by the
    // thread alone; the settled flag is guarded by `state`.
    private var tid = pthread_t()
    private let state = Lock(false)  // joined or detached already
    /// Released by the thread once it has run, so that an owner the body
    /// captures does not keep a cycle through this object.
    private var body: (@Sendable () -> Void)?
    private let name: String

    /// Starts `body` on a new thread named `name` (at most 15 bytes are
    /// kept, as the kernel does). The thread holds the object until `body`
    /// returns. Throws ``SedaError/outOfMemory`` or ``SedaError/system(errno:)``
    /// when no thread can be made (`EAGAIN`: the process's thread limit).
    public init(name: String, _ body: @escaping @Sendable () -> Void) throws(SedaError) {
        self.body = body
        self.name = name
        let ctx = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(
            &tid, nil,
            { ctx in
                let me = Unmanaged<SedaThread>.fromOpaque(ctx!).takeRetainedValue()
                me.nameCallingThread()
                let body = me.body
                me.body = nil
                body?()
                return nil
            }, ctx)
        if rc != 0 {
            Unmanaged<SedaThread>.fromOpaque(ctx).release()
            state.withLock { $0 = true }
            // pthread_create's EAGAIN is "no thread", not "queue full".
            throw rc == EAGAIN || rc == ENOMEM ? .outOfMemory : .system(errno: rc)
        }
    }

    /// Starts `body` on a detached thread: nobody waits for it.
    public static func detached(name: String, _ body: @escaping @Sendable () -> Void) throws(SedaError) {
        try SedaThread(name: name, body).detach()
    }

    /// Whether the calling thread is this one.
    public var isCurrent: Bool { pthread_equal(pthread_self(), tid) != 0 }

    /// Waits for `body` to return. From the thread itself it detaches
    /// instead (the thread ends when `body` returns).
    public func join() {
        guard settle() else { return }
        if isCurrent {
            pthread_detach(tid)
        } else {
            pthread_join(tid, nil)
        }
    }

    /// Lets the thread end on its own; nobody will join it.
    public func detach() {
        guard settle() else { return }
        pthread_detach(tid)
    }

    /// Marks the thread joined or detached; returns false if it was already.
    private func settle() -> Bool {
        state.withLock { settled in
            defer { settled = true }
            return !settled
        }
    }

    /// Names the calling thread (pthread_setname_np is not imported without
    /// _GNU_SOURCE; writing /proc/thread-self/comm is what it does).
    private func nameCallingThread() {
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = write(fd, bytes, bytes.count)
        close(fd)
    }
}
