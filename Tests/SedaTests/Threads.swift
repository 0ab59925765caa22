@_spi(Threads) import Seda

/// A joinable thread for tests that need real threads (not the cooperative
/// pool, which has one thread per CPU and must never block): Seda's own
/// thread helper, failing the test run if no thread can be made.
func startThread(name: String, _ body: @escaping @Sendable () -> Void) -> SedaThread {
    do {
        return try SedaThread(name: name, body)
    } catch {
        preconditionFailure("no thread for \(name): \(error)")
    }
}
