import CSedaCore
import Glibc
import Testing

@testable import Seda

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
        try timers.schedule(Job(2, life), to: sink, after: .milliseconds(10))  // same deadline: after 1
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
        #expect(
            timers.stats == Timers.Stats(pending: 0, added: 4, fired: 3, retries: 0, undeliverable: 0, cancelled: 1))
        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func aFullStageDefersTheTimerInsteadOfDroppingIt() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let life = Life()
        let gate = Gate()
        let sink = try runtime.addStage(
            "gated", handler: gate,
            options: StageOptions(
                threadManager: .dedicated(threads: 1), batchSize: 1,
                queueCapacity: 2))
        try sink.enqueue(Job(0, life))
        waitUntil("handler holds the thread") { gate.entered.value == 1 }
        try sink.enqueue(Job(1, life))
        try sink.enqueue(Job(2, life))
        let timers = try Timers(clock: clock, startThread: false)
        try timers.schedule(Job(3, life), to: sink, after: .milliseconds(1))  // a "cleanup" event
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
        try timers.schedule(Job(4, life), to: sink, after: .seconds(3600))  // released by deinit
        waitUntil("3 fired") { recorder.received.value == 3 }
        #expect(recorder.seen == [1, 2, 3])
        try runtime.shutdown()
        _ = consume timers
        #expect(life.balanced)
    }
}

extension TimersTests {
    /// A periodic tick without re-arming from the handler (whose own sink
    /// does not exist when it is built): one call once the stage exists.
    @Test func repeatingTimersTickOnAFixedSchedule() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let life = Life()
        let recorder = Recorder()
        let sink = try runtime.addStage("ticks", handler: recorder)
        let timers = try Timers(clock: clock, startThread: false)
        let id = try timers.scheduleRepeating(Job(7, life), to: sink, every: .milliseconds(10))
        #expect(throws: SedaError.invalidArgument) {
            try timers.scheduleRepeating(Job(8, life), to: sink, every: .zero)
        }

        try clock.advance(by: .milliseconds(9))
        timers.poll()
        #expect(recorder.received.value == 0, "not before the first interval")
        for k in 1...3 {
            try clock.advance(by: .milliseconds(k == 1 ? 1 : 10))
            timers.poll()
            waitUntil("tick \(k)") { recorder.received.value == k }
        }
        // Late by three and a half intervals: the missed ticks are skipped,
        // the phase kept (due at 40, 50, 60 ms: one tick now, the next at 70).
        try clock.advance(by: .milliseconds(35))
        timers.poll()
        waitUntil("tick 4") { recorder.received.value == 4 }
        try clock.advance(by: .milliseconds(4))
        timers.poll()
        #expect(recorder.received.value == 4, "70 ms is not due at 69")
        try clock.advance(by: .milliseconds(1))
        timers.poll()
        waitUntil("tick 5") { recorder.received.value == 5 }

        #expect(timers.cancel(id))
        #expect(!timers.cancel(id), "cancelled once")
        try clock.advance(by: .milliseconds(100))
        #expect(timers.poll() == nil, "nothing pending once cancelled")
        #expect(recorder.seen == [7, 7, 7, 7, 7])
        try runtime.shutdown()
        _ = consume timers
        #expect(life.balanced, "the repeated event is released once")
    }

    /// A repeating timer whose stage goes away stops (undeliverable), and
    /// its cancel then says it was not pending.
    @Test func aRepeatingTimerStopsWhenItsStageCloses() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let life = Life()
        let sink = try runtime.addStage("gone", handler: Recorder())
        let timers = try Timers(clock: clock, startThread: false)
        let id = try timers.scheduleRepeating(Job(1, life), to: sink, every: .milliseconds(5))
        try runtime.destroyStage(named: "gone")
        try clock.advance(by: .milliseconds(5))
        timers.poll()
        #expect(timers.stats.undeliverable == 1)
        #expect(timers.poll() == nil, "not re-armed")
        #expect(!timers.cancel(id))
        try runtime.shutdown()
        _ = consume timers
        #expect(life.balanced)
    }

    /// Cancel racing the timer thread's deliveries: every timer ends exactly
    /// once, delivered or cancelled, and cancel's answer says which (it
    /// waits out a delivery in progress with a backoff, not a spin).
    @Test func cancelRacingDeliveryAccountsForEveryTimer() throws {
        let runtime = try Runtime()
        let life = Life()
        let recorder = Recorder()
        let sink = try runtime.addStage(
            "raced", handler: recorder,
            options: StageOptions(queueCapacity: 4096))
        let timers = try Timers(clock: runtime.clock, resolution: .microseconds(100))
        var cancelled = 0
        for round in 0..<20 {
            let ids = try (0..<50).map { i in
                try timers.schedule(Job(round * 50 + i, life), to: sink, after: .microseconds(Int64(i * 20)))
            }
            for id in ids.reversed() where timers.cancel(id) { cancelled += 1 }
        }
        let repeating = try timers.scheduleRepeating(Job(-1, life), to: sink, every: .microseconds(200))
        usleep(2000)
        #expect(timers.cancel(repeating))
        waitUntil("settled") { timers.stats.pending == 0 }
        let delivered = Int(timers.stats.fired)
        waitUntil("received") { recorder.received.value == delivered }
        let oneShots = recorder.seen.filter { $0 >= 0 }.count
        #expect(oneShots + cancelled == 1000, "each one-shot timer delivered or cancelled, once")
        #expect(Set(recorder.seen.filter { $0 >= 0 }).count == oneShots, "none twice")
        try runtime.shutdown()
        _ = consume timers
        #expect(life.balanced)
    }
}

extension Sink {
    /// Events waiting in the stage's queue (tests only).
    var count: Int { Int(StageStatistics(stage: stage.pointer).queueLength) }
}
