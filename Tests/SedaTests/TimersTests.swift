import Glibc
import Testing

@testable import Seda
import CSedaCore

/// Holds its handler until opened, to make a stage's queue fill up.
final class Gate: EventHandler, @unchecked Sendable {
    // @unchecked: `open` is an atomic counter; `inner` is immutable.
    let inner = Recorder()
    let open = Counter()
    let entered = Counter()
    func handle(_ batch: inout EventBatch<Job>) throws {
        entered.add(1)
        while open.value == 0 { usleep(200) }
        try inner.handle(&batch)
    }
}

@Suite("Timers")
struct TimersTests {
    @Test func fireInDeadlineOrderOnAManualClock() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let life = Life()
        let recorder = Recorder()
        let sink = try runtime.addStage("timed", handler: recorder)
        let timers = try Timers(clock: clock, startThread: false)
        try timers.schedule(Job(3, life), to: sink, after: .milliseconds(30))
        try timers.schedule(Job(1, life), to: sink, after: .milliseconds(10))
        try timers.schedule(Job(2, life), to: sink, after: .milliseconds(10)) // same deadline: after 1
        let cancelled = try timers.schedule(Job(99, life), to: sink, after: .milliseconds(20))
        #expect(timers.stats.pending == 4)

        try clock.advance(by: .milliseconds(9))
        timers.poll()
        #expect(timers.stats.fired == 0, "nothing fires before its deadline")
        #expect(timers.cancel(cancelled))
        #expect(!timers.cancel(cancelled))
        try clock.advance(by: .milliseconds(1))
        timers.poll()
        #expect(timers.stats.fired == 2)
        try clock.advance(by: .milliseconds(20))
        #expect(timers.poll() == nil, "nothing left pending")
        waitUntil("3 delivered") { recorder.received.value == 3 }
        #expect(recorder.seen == [1, 2, 3])
        #expect(timers.stats == Timers.Stats(pending: 0, added: 4, fired: 3, retries: 0, undeliverable: 0, cancelled: 1))
        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func aFullStageDefersTheTimerInsteadOfDroppingIt() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let life = Life()
        let gate = Gate()
        let sink = try runtime.addStage("gated", handler: gate,
                                        options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 1,
                                                              queueCapacity: 2))
        try sink.enqueue(Job(0, life))
        waitUntil("handler holds the thread") { gate.entered.value == 1 }
        try sink.enqueue(Job(1, life))
        try sink.enqueue(Job(2, life))
        let timers = try Timers(clock: clock, startThread: false)
        try timers.schedule(Job(3, life), to: sink, after: .milliseconds(1)) // a "cleanup" event
        try clock.advance(by: .milliseconds(1))
        timers.poll()
        timers.poll()
        #expect(timers.stats.retries >= 1)
        #expect(timers.stats.pending == 1, "still pending, not dropped")
        gate.open.add(1)
        waitUntil("room") { sink.count < 2 }
        try clock.advance(by: .milliseconds(1))
        timers.poll()
        #expect(timers.stats.fired == 1)
        waitUntil("4 handled") { gate.inner.received.value == 4 }
        #expect(gate.inner.seen == [0, 1, 2, 3])
        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func aTimerForAGoneStageReleasesItsEvent() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let life = Life()
        let sink = try runtime.addStage("gone", handler: Recorder())
        let timers = try Timers(clock: clock, startThread: false)
        try timers.schedule(Job(1, life), to: sink, after: .milliseconds(5))
        try timers.schedule(Job(2, life), to: sink, after: .seconds(3600))
        try runtime.destroyStage(named: "gone")
        try clock.advance(by: .milliseconds(5))
        timers.poll()
        #expect(timers.stats.undeliverable == 1)
        #expect(timers.cancelAll() == 1)
        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func theTimerThreadFiresOnTheRealClock() throws {
        let runtime = try Runtime()
        let life = Life()
        let recorder = Recorder()
        let sink = try runtime.addStage("real", handler: recorder)
        let timers = try Timers(clock: runtime.clock)
        try timers.schedule(Job(3, life), to: sink, after: .milliseconds(30))
        try timers.schedule(Job(1, life), to: sink, after: .milliseconds(5))
        try timers.schedule(Job(2, life), to: sink, after: .milliseconds(15))
        try timers.schedule(Job(4, life), to: sink, after: .seconds(3600)) // released by deinit
        waitUntil("3 fired") { recorder.received.value == 3 }
        #expect(recorder.seen == [1, 2, 3])
        try runtime.shutdown()
        _ = consume timers
        #expect(life.balanced)
    }
}

extension Sink {
    /// Events waiting in the stage's queue (tests only).
    var count: Int {
        var st = seda_stage_stats_t()
        seda_stage_stats(stage.pointer, &st)
        return Int(st.queue_length)
    }
}
