import Glibc
import Seda

/// The logger stage (GnuLogger): records each query, then floods it. In
/// the seed's experiments it is the bottleneck: each query costs
/// ``delay`` (the seed's "server-side delay of 20 ms for query messages"),
/// spent asleep, so the stage belongs on a dedicated pool the thread
/// governor can grow (λ·p·L threads: 1000/s × 15 % × 20 ms = 3).
///
/// Thread rules: a stage handler; any number of threads may run it at
/// once (``record`` must be thread-safe).
public final class QueryLogger: EventHandler, Sendable {
    public typealias Event = GnutellaEvent

    /// Time spent per query before it is forwarded.
    public let delay: Duration
    /// Called with every query, on the logging thread (nil: count only).
    public let record: (@Sendable (Descriptor) -> Void)?
    private let forwarding: Forwarding
    private let statistics: GnutellaStatistics

    init(
        delay: Duration, record: (@Sendable (Descriptor) -> Void)?, neighbours: Neighbours,
        statistics: GnutellaStatistics
    ) {
        self.delay = delay
        self.record = record
        forwarding = Forwarding(neighbours: neighbours, statistics: statistics)
        self.statistics = statistics
    }

    public func handle(_ batch: inout EventBatch<GnutellaEvent>) throws {
        let (s, atto) = delay.components
        var pause = timespec(tv_sec: Int(s), tv_nsec: Int(atto / 1_000_000_000))
        batch.forEach { e in
            guard e.kind == .descriptor else { return }
            let d = unsafeDowncast(e, to: Descriptor.self)
            if delay > .zero {
                var rest = timespec()
                while nanosleep(&pause, &rest) != 0 && errno == EINTR { pause = rest }
                pause = timespec(tv_sec: Int(s), tv_nsec: Int(atto / 1_000_000_000))
            }
            record?(d)
            statistics.logged()
            forwarding.flood(d)
        }
    }
}
