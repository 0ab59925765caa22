import Glibc

/// Starts and stops one controller's ticking thread: at most one at a time.
final class ControllerLoop: Sendable {
    private let thread = Lock<ControllerThread?>(nil)

    /// Starts ticking every `interval` on a thread named `name`, unless a
    /// thread is running already (made under the lock, so two starts cannot
    /// both make one). Returns whether it started one.
    func start(name: String, interval: Duration, tick: @escaping @Sendable () -> Void) throws(SedaError) -> Bool {
        let result: Result<Bool, SedaError> = thread.withLock { t in
            guard t == nil else { return .success(false) }
            do throws(SedaError) {
                t = try ControllerThread(name: name, interval: interval, body: tick)
                return .success(true)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Stops the thread and waits for it. Idempotent.
    func stop() {
        let t = thread.withLock { t in
            defer { t = nil }
            return t
        }
        t?.stop()
    }
}

/// A controller's own thread: calls `body` every `interval` (on the monotonic
/// clock, on a fixed schedule; a late tick does not shift the ones after it,
/// missed ones are skipped) until ``stop()``. It sleeps on a pthread
/// condition variable, so ``stop()`` wakes it at once.
final class ControllerThread: @unchecked Sendable {
    // @unchecked: `stopping` is guarded by `mutex`; `thread` is written once,
    // in init, and read only by stop() (the owner publishes this object
    // through a lock); the rest is immutable.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var stopping = false
    private var thread: SedaThread?
    private let intervalNanoseconds: Int64
    private let body: @Sendable () -> Void

    /// Starts the thread, named `name` (at most 15 bytes are kept).
    init(name: String, interval: Duration, body: @escaping @Sendable () -> Void) throws(SedaError) {
        intervalNanoseconds = max(1, interval.saturatingNanoseconds)
        self.body = body
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(cond, &attr) == 0, "pthread_cond_init failed")
        pthread_condattr_destroy(&attr)
        // The thread holds this object until its loop ends.
        thread = try SedaThread(name: name) { [self] in run() }
    }

    deinit {
        pthread_cond_destroy(cond)
        cond.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private static func monotonicNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    private func run() {
        var next = saturatingAdd(Self.monotonicNow(), intervalNanoseconds)
        while true {
            pthread_mutex_lock(mutex)
            while !stopping, Self.monotonicNow() < next {
                var ts = timespec(tv_sec: Int(next / 1_000_000_000), tv_nsec: Int(next % 1_000_000_000))
                _ = pthread_cond_timedwait(cond, mutex, &ts)
            }
            let stop = stopping
            pthread_mutex_unlock(mutex)
            if stop { return }
            body()
            next = saturatingAdd(next, intervalNanoseconds)
            let now = Self.monotonicNow()
            if next <= now {  // ran late: skip the missed ticks, keep the phase
                next = saturatingAdd(next, ((now - next) / intervalNanoseconds + 1) * intervalNanoseconds)
            }
        }
    }

    /// Stops the thread and waits for it (for at most the tick it may be
    /// running). Idempotent. From the thread's own tick it does not wait.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
        thread?.join()
    }
}
