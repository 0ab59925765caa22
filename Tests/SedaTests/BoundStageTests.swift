import Glibc
import Synchronization
import Testing

@testable import Seda

private final class Note: Sendable {}

/// Records the shared thread each call runs on.
private struct RecordsThread: EventHandler {
    let runtime: Runtime
    let wrong: Counter
    let seen: Counter
    let bound: Int

    func handle(_ batch: inout EventBatch<Note>) throws {
        if runtime.currentThread != bound { wrong.add(batch.count) }
        seen.add(batch.count)
    }
}

@Suite("Bound stages")
struct BoundStageTests {
    @Test func aBoundStageRunsOnItsThreadOnly() throws {
        let runtime = try Runtime(cpuThreads: 3)
        let wrong = Counter()
        let seen = Counter()
        var options = StageOptions(batchSize: 4)
        options.boundThread = 2
        let sink = try runtime.addStage(
            "bound", handler: RecordsThread(runtime: runtime, wrong: wrong, seen: seen, bound: 2), options: options)
        for _ in 0..<500 { try sink.enqueue(Note(), timeout: .seconds(10)) }
        waitUntil("every event handled") { seen.value == 500 }
        #expect(wrong.value == 0)
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }

    @Test func badBindingsAreRefused() throws {
        let runtime = try Runtime(cpuThreads: 2)
        let h = RecordsThread(runtime: runtime, wrong: Counter(), seen: Counter(), bound: 0)
        var notAThread = StageOptions()
        notAThread.boundThread = 2
        #expect(throws: SedaError.self) { try runtime.addStage("a", handler: h, options: notAThread) }
        var dedicated = StageOptions(threadManager: .dedicated(threads: 1))
        dedicated.boundThread = 0
        #expect(throws: SedaError.self) { try runtime.addStage("b", handler: h, options: dedicated) }
        var concurrent = StageOptions(threadManager: .shared(concurrency: 2))
        concurrent.boundThread = 0
        #expect(throws: SedaError.self) { try runtime.addStage("c", handler: h, options: concurrent) }
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }
}
