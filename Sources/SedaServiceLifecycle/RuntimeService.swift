@_spi(Threads) import Seda
import ServiceLifecycle

extension Runtime: Service {
    /// Runs until a graceful shutdown is requested (a `ServiceGroup` turns
    /// SIGTERM into one), then drains the graph. The blocking drain runs on
    /// a thread of its own (`seda-shutdown`), not on Swift's cooperative pool.
    public func run() async throws {
        try? await gracefulShutdown()
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            do throws(SedaError) {
                try SedaThread.detached(name: "seda-shutdown") { [self] in
                    do throws(SedaError) {
                        try shutdown(.drain)
                        cont.resume()
                    } catch .closed {
                        cont.resume()  // someone shut it down already
                    } catch {
                        cont.resume(throwing: error)
                    }
                }
            } catch {
                cont.resume(throwing: error)
            }
        }
    }
}
