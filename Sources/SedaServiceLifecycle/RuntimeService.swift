import Glibc
import Seda
import ServiceLifecycle

extension Runtime: Service {
    /// Runs until a graceful shutdown is requested (a `ServiceGroup` turns
    /// SIGTERM into one), then drains the graph. The blocking drain runs on
    /// a thread of its own, not on Swift's cooperative pool.
    public func run() async throws {
        try? await gracefulShutdown()
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            let box = Unmanaged.passRetained(ShutdownJob(runtime: self, continuation: cont))
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { arg in
                let job = Unmanaged<ShutdownJob>.fromOpaque(arg!).takeRetainedValue()
                do throws(SedaError) {
                    try job.runtime.shutdown(.drain)
                    job.continuation.resume()
                } catch .closed {
                    job.continuation.resume() // someone shut it down already
                } catch {
                    job.continuation.resume(throwing: error)
                }
                return nil
            }, box.toOpaque())
            if rc == 0 {
                pthread_detach(tid)
            } else {
                box.release()
                cont.resume(throwing: SedaError(code: -rc))
            }
        }
    }
}

private final class ShutdownJob: @unchecked Sendable {
    let runtime: Runtime
    let continuation: CheckedContinuation<Void, any Error>
    init(runtime: Runtime, continuation: CheckedContinuation<Void, any Error>) {
        self.runtime = runtime
        self.continuation = continuation
    }
}
