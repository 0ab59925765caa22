import Glibc

/// A joinable POSIX thread for tests that need real threads (not the
/// cooperative pool, which has one thread per CPU and must never block).
final class Thread: @unchecked Sendable {
    private var handle = pthread_t()
    private let body: @Sendable () -> Void

    init(name: String, _ body: @escaping @Sendable () -> Void) {
        self.body = body
        let ctx = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&handle, nil, { ctx in
            let me = Unmanaged<Thread>.fromOpaque(ctx!).takeRetainedValue()
            me.body()
            return nil
        }, ctx)
        precondition(rc == 0, "pthread_create failed for \(name): \(rc)")
    }

    func join() {
        pthread_join(handle, nil)
    }
}
