import Seda

/// How the router's route cleanup ticks reach it.
public enum CleanupDelivery: Sendable, Equatable {
    /// As control events: no admission controller or queue discipline may
    /// drop them (Seda's way; ``Sink/enqueueControl(_:)``).
    case control
    /// As ordinary events, through the router's admission controller: the
    /// seed's Sandstorm, where a queue threshold dropped them and the
    /// "list of recent packets" grew without bound. For the experiment.
    case ordinary
}

/// The ticker stage: turns the runtime's one-shot ``Timers`` into periodic
/// ticks. Timers deliver each tick here (as a control event); the handler
/// arms the next one and hands the tick to its stage, the route cleanup
/// as ``CleanupDelivery`` says. A tick refused on the ordinary path is
/// lost, as the seed's were; the next one comes a period later regardless.
///
/// Thread rules: a stage handler.
final class TickerHandler: EventHandler, Sendable {
    typealias Event = Tick

    struct Job: Sendable {
        let period: Duration
        let deliver: @Sendable () -> Void
    }

    private let timers: Timers
    private let jobs: [Tick.Job: Job]
    private let me = Lock<Sink<Tick>?>(nil)

    init(timers: Timers, jobs: [Tick.Job: Job]) {
        self.timers = timers
        self.jobs = jobs
    }

    /// Starts every job: its first tick after one period, or at once.
    func start(sink: Sink<Tick>, immediately: Set<Tick.Job> = []) throws(SedaError) {
        me.withLock { $0 = sink }
        for (job, j) in jobs {
            try timers.schedule(Tick(job), to: sink, after: immediately.contains(job) ? .zero : j.period)
        }
    }

    func handle(_ batch: inout EventBatch<Tick>) throws {
        guard let sink = me.withLock({ $0 }) else { return }
        batch.forEach { t in
            guard let j = jobs[t.job] else { return }
            _ = try? timers.schedule(Tick(t.job), to: sink, after: j.period)
            j.deliver()
        }
    }
}
