import Glibc
import Seda

// Seda's rows in `seda-bench pipeline`: each thread manager × stage batch
// size (1, 64), a 4-stage pipeline of Seda stages.

extension PipelineBench {
    static var sedaContenders: [PipelineContender] {
        [(ThreadManager.shared(), "shared per-CPU threads"), (.dedicated(threads: 1), "a thread per stage")]
            .flatMap { manager, label in
                [1, 64].map { batch in
                    PipelineContender(label: "Seda, 4 stages, \(label)", batch: batch, isBaseline: false) {
                        SedaPipeline(manager: manager, batch: batch)
                    }
                }
            }
    }
}

/// Four Seda stages; each touches its events and forwards the batch to the
/// next stage's sink (one enqueue per batch, no per-event reference
/// counting); the last completes them.
///
/// Every queue is sized to hold a whole run, as the baselines' queues are
/// unbounded: a full queue downstream is never met, so no handler waits on
/// one (on the shared threads that could deadlock the pipeline; backpressure
/// is the load-conditioning issue's business, not this benchmark's).
final class SedaPipeline: PipelineUnderTest {
    let manager: ThreadManager
    let batch: Int
    private var runtime: Runtime?
    private var entry: Sink<PipelineEvent>?

    init(manager: ThreadManager, batch: Int) {
        self.manager = manager
        self.batch = batch
    }

    var ingressBatch: Int { batch }

    struct Touch: EventHandler {
        let next: Sink<PipelineEvent>
        func handle(_ batch: inout EventBatch<PipelineEvent>) throws {
            batch.forEach { $0.touch() }
            try batch.forward(to: next)
        }
    }

    struct Last: EventHandler {
        let sink: PipelineSink
        func handle(_ batch: inout EventBatch<PipelineEvent>) throws {
            batch.forEach { event in
                event.touch()
                sink.complete(event)
            }
        }
    }

    func start(sink: PipelineSink) throws {
        var capacity = 1024
        while capacity < sink.expected { capacity *= 2 }
        let options = StageOptions(threadManager: manager, batchSize: batch, queueCapacity: capacity)
        let runtime = try Runtime()
        var next = try runtime.addStage("stage4", handler: Last(sink: sink), options: options)
        for i in (1...3).reversed() {
            next = try runtime.addStage("stage\(i)", handler: Touch(next: next), options: options)
        }
        self.runtime = runtime
        entry = next
    }

    func submit(_ event: PipelineEvent) {
        var spins = 0
        while !entry!.enqueueLossyKeeping(event) {
            spins += 1
            if spins > 64 { sched_yield() }
        }
    }

    func submit(contentsOf events: [PipelineEvent]) {
        var spins = 0
        while true {
            do throws(SedaError) {
                try entry!.enqueueMany(events)
                return
            } catch let error {
                precondition(error == .full, "stage1: \(error)")
                spins += 1
                if spins > 64 { sched_yield() }
            }
        }
    }

    func shutdown() {
        try? runtime?.shutdown(.drain)
        runtime = nil
        entry = nil
    }
}

extension Sink {
    /// Enqueue that reports a full queue as `false` without losing the event
    /// (the caller still holds it and retries).
    @inline(__always)
    func enqueueLossyKeeping(_ event: Event) -> Bool {
        do throws(SedaError) {
            try enqueue(event)
            return true
        } catch let error {
            precondition(error == .full, "stage1: \(error)")
            return false
        }
    }
}
