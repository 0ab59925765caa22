import Glibc
import Logging
import Testing

@_spi(Threads) @testable import Seda

/// Holds a reference to the runtime until told to let go, from its handler.
private final class Holder: @unchecked Sendable {
    // @unchecked: `runtime` is written by the test thread before the event
    // that makes the handler clear it is enqueued (the queue orders the two).
    var runtime: Runtime?
}

/// Drops the runtime reference it holds when it handles an event: the last
/// release of the runtime then lands on the stage's own thread.
private struct LetGo: EventHandler {
    let holder: Holder
    let tornDown: Counter
    func handle(_ batch: inout EventBatch<Job>) throws {
        holder.runtime = nil
    }
    func tearDown() { tornDown.add(1) }
}

/// Keeps the context it was set up with, as a handler that looks up other
/// stages later would.
private final class KeepsContext: EventHandler, @unchecked Sendable {
    // @unchecked: written once in setUp, before any event.
    var context: StageContext?
    let tornDown: Counter
    init(tornDown: Counter) { self.tornDown = tornDown }
    func setUp(_ context: StageContext) throws { self.context = context }
    func handle(_ batch: inout EventBatch<Job>) throws {}
    func tearDown() { tornDown.add(1) }
}

/// Sleeps a little per event, so that a drain takes a moment.
private struct Slow: EventHandler {
    let handled: Counter
    func handle(_ batch: inout EventBatch<Job>) throws {
        usleep(200)
        handled.add(batch.count)
    }
}

@Suite("Runtime lifetime")
struct LifetimeTests {
    /// A runtime dropped without shutdown used to discard its queued events
    /// silently. Now its deinit drains them (bounded) and says so.
    @Test func aDroppedRuntimeDrainsAndSaysSo() throws {
        let life = Life()
        let handled = Counter()
        let log = LogCapture()
        do {
            let runtime = try Runtime(logger: log.logger)
            let sink = try runtime.addStage(
                "slow", handler: Slow(handled: handled),
                options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 1))
            for i in 0..<50 { try sink.enqueue(Job(i, life)) }
        }  // the last reference goes here, most events still queued
        #expect(handled.value == 50, "every accepted event was processed")
        let notes = log.matching("without shutdown()")
        #expect(notes.count == 1)
        #expect(notes.first?.level == .notice)
        #expect(life.balanced)
    }

    /// What the drain cannot finish in time is given back and logged, by
    /// stage, at error level (here a stage that never finishes its batch
    /// while the release waits for it: the release runs with a short wait
    /// through the same path the deinit takes).
    @Test func whatADrainCannotFinishIsReportedByStage() throws {
        let life = Life()
        let log = LogCapture()
        let runtime = try Runtime(logger: log.logger)
        let gate = Gate()
        let sink = try runtime.addStage(
            "stuck", handler: gate,
            options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 1))
        for i in 0..<5 { try sink.enqueue(Job(i, life)) }
        waitUntil("held") { gate.entered.value == 1 }
        // Open the gate only after the release has given up.
        let opener = startThread(name: "opener") {
            waitUntil("given back") { StageStatistics(stage: sink.stage.pointer).handedBack == 4 }
            gate.open.add(1)
        }
        let release = RuntimeRelease(
            handle: runtime.handle, stages: [("stuck", sink.stage)],
            logger: log.logger, coreLog: runtime.coreLog, why: "test release", drainTimeout: .milliseconds(50))
        #expect(release.run(destroy: false))
        opener.join()
        let errors = log.matching("given back unprocessed")
        #expect(errors.count == 1)
        #expect(errors.first?.level == .error)
        #expect(errors.first?.metadata["stage.stuck"] == "4")
        #expect(errors.first?.metadata["discarded"] == "4")
        #expect(throws: SedaError.closed) { try runtime.shutdown() }
        #expect(life.balanced)
    }

    /// The last release of a runtime on one of its own threads used to
    /// abort the process (destroying the runtime from its own thread). It is
    /// finished on a thread of its own instead.
    @Test func theLastReleaseOnAPoolThreadDoesNotAbort() throws {
        let life = Life()
        let holder = Holder()
        let tornDown = Counter()
        var sink: Sink<Job>?
        do {
            let runtime = try Runtime()
            sink = try runtime.addStage(
                "letgo", handler: LetGo(holder: holder, tornDown: tornDown),
                options: StageOptions(threadManager: .dedicated(threads: 1)))
            holder.runtime = runtime
        }
        try sink!.enqueue(Job(0, life))  // the handler drops the last reference
        waitUntil("released and torn down") { tornDown.value == 1 }
        #expect(throws: SedaError.closed) { try sink!.enqueue(Job(1, life)) }
        sink = nil
        waitUntil("events freed") { life.balanced }
    }

    /// A handler keeping its context kept the runtime alive through it: a
    /// cycle, so the runtime was never released. The context is weak now.
    @Test func aHandlerKeepingItsContextDoesNotKeepTheRuntime() throws {
        let tornDown = Counter()
        weak var weakRuntime: Runtime?
        let handler = KeepsContext(tornDown: tornDown)
        do {
            let runtime = try Runtime()
            weakRuntime = runtime
            try runtime.addStage("keeper", handler: handler)
            #expect(handler.context?.runtime === runtime)
            #expect(throws: Never.self) { _ = try handler.context?.sink(named: "keeper", of: Job.self) }
        }
        #expect(weakRuntime == nil, "the runtime went with its last outside reference")
        #expect(tornDown.value == 1, "and took its stages down")
        #expect(handler.context?.runtime == nil)
        #expect(throws: SedaError.closed) { try handler.context?.sink(named: "keeper", of: Job.self) }
    }

    /// At process exit (a runtime held by a global is never deinitialised)
    /// the live runtimes drain too; one shut down already says nothing.
    @Test func exitDrainsLiveRuntimes() throws {
        let life = Life()
        let handled = Counter()
        let log = LogCapture()
        let runtime = try Runtime(logger: log.logger)
        let sink = try runtime.addStage(
            "slow", handler: Slow(handled: handled),
            options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 1))
        for i in 0..<20 { try sink.enqueue(Job(i, life)) }
        Runtime.release([runtime], why: "process exiting with a runtime")
        #expect(handled.value == 20)
        #expect(log.matching("process exiting with a runtime without shutdown()").count == 1)
        Runtime.release([runtime], why: "again")
        #expect(log.matching("again").isEmpty, "a stopped runtime has nothing to report")
        #expect(life.balanced)
    }
}
