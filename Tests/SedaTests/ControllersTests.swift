import Glibc
import SedaConfiguration
import Synchronization
import Testing

@_spi(Threads) @testable import Seda

// MARK: - Fakes

/// Opens once; handlers wait on it.
final class PoolGate: Sendable {
    private let opened = Atomic<Bool>(false)
    func open() { opened.store(true, ordering: .releasing) }
    var isOpen: Bool { opened.load(ordering: .acquiring) }
}

/// A handler whose every call blocks until its gate opens, so that the
/// queue behind it holds exactly what the test enqueued and each pool
/// thread holds one event.
struct GatedHandler: EventHandler {
    let gate: PoolGate
    let entered = Counter()
    func handle(_ batch: inout EventBatch<Job>) throws {
        entered.add(1)
        while !gate.isOpen { usleep(200) }
    }
}

/// Handles nothing, for stages that only need to exist.
struct DiscardJobs: EventHandler {
    func handle(_ batch: inout EventBatch<Job>) throws {}
}

/// A dedicated pool as the governor sees it, made up: each interval adds
/// `rate × dt` processed events and `busyThreads × dt` of handler time.
struct FakePool {
    var time: Int64 = 1_000_000_000
    var processed: UInt64 = 0
    var handler: UInt64 = 0

    mutating func sample(
        afterMilliseconds ms: Int64, queue: Int, threads: Int,
        rate: Double = 0, busyThreads: Double = 0
    ) -> GovernorSample {
        time += ms * 1_000_000
        processed += UInt64(rate * Double(ms) / 1000)
        handler += UInt64(busyThreads * Double(ms) * 1_000_000)
        return GovernorSample(
            time: time, queueLength: queue, processed: processed,
            handlerNanoseconds: handler, threads: threads)
    }
}

func governorSettings(
    threshold: Int, minThreads: Int = 1, idle: Duration = .seconds(1),
    delay: Duration = .milliseconds(500), autoMaxDetect: Bool = false
) -> GovernorSettings {
    var s = GovernorSettings()
    s.threshold = threshold
    s.minThreads = minThreads
    s.idleTimeThreshold = idle
    s.delay = delay
    s.autoMaxDetect = autoMaxDetect
    return s
}

/// Which of the experiments' events are slow: 15 %, from a fixed
/// pseudo-random sequence (SplitMix64), so every run sends the same load.
func isSlow(_ n: Int) -> Bool {
    var z = UInt64(truncatingIfNeeded: n) &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return z % 100 < 15
}

/// Sandstorm's Gnutella logger with its bottleneck: 15 % of events sleep 20 ms.
struct SometimesSlow: EventHandler {
    let handled = Counter()
    func handle(_ batch: inout EventBatch<Job>) throws {
        batch.forEach { job in
            if isSlow(job.n) { usleep(20_000) }
        }
        handled.add(batch.count)
    }
}

func monotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func sleepUntil(_ deadline: Int64) {
    var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
}

// MARK: - Thread governor

@Suite("Controllers")
struct ControllersTests {
    // The rules, on made-up samples.

    @Test func governorAddsAThreadPerSampleUpToTheMaximum() {
        var policy = GovernorPolicy(settings: governorSettings(threshold: 50), autoMaxDetect: false)
        var pool = FakePool()
        let s1 = pool.sample(afterMilliseconds: 0, queue: 100, threads: 1, rate: 300, busyThreads: 1)
        #expect(
            policy.decide(s1, maxThreads: 4)
                == .init(threads: 2, reason: .queueAtThreshold(queueLength: 100, threshold: 50)))
        #expect(policy.decide(pool.sample(afterMilliseconds: 500, queue: 150, threads: 2), maxThreads: 4)?.threads == 3)
        // Draining, but not fast enough to be below the threshold at the next sample.
        #expect(policy.decide(pool.sample(afterMilliseconds: 500, queue: 120, threads: 3), maxThreads: 4)?.threads == 4)
        #expect(
            policy.decide(pool.sample(afterMilliseconds: 500, queue: 130, threads: 4), maxThreads: 4) == nil,
            "at the maximum")
    }

    @Test func governorLeavesABacklogThatDrainsByTheNextSample() {
        var policy = GovernorPolicy(settings: governorSettings(threshold: 50), autoMaxDetect: false)
        var pool = FakePool()
        _ = policy.decide(pool.sample(afterMilliseconds: 0, queue: 10, threads: 2), maxThreads: 8)
        #expect(policy.decide(pool.sample(afterMilliseconds: 500, queue: 200, threads: 2), maxThreads: 8)?.threads == 3)
        // 200 → 110: on that trend it is at 20 by the next sample.
        #expect(policy.decide(pool.sample(afterMilliseconds: 500, queue: 110, threads: 3), maxThreads: 8) == nil)
        #expect(policy.decide(pool.sample(afterMilliseconds: 500, queue: 20, threads: 3), maxThreads: 8) == nil)
    }

    @Test func governorRemovesAThreadIdleLongerThanTheTimeout() {
        var policy = GovernorPolicy(settings: governorSettings(threshold: 50, idle: .seconds(1)), autoMaxDetect: false)
        var pool = FakePool()
        func next(_ threads: Int, busy: Double = 0.5, queue: Int = 0) -> GovernorPolicy.Change? {
            policy.decide(
                pool.sample(afterMilliseconds: 500, queue: queue, threads: threads, rate: 100, busyThreads: busy),
                maxThreads: 8)
        }
        #expect(next(3) == nil, "the first sample only sets the baseline")
        #expect(next(3) == nil, "idle for 0.5 s")
        #expect(next(3) == .init(threads: 2, reason: .idle(for: .seconds(1), busyThreads: 0.5)))
        #expect(next(2) == nil, "the idle clock restarted")
        #expect(next(2)?.threads == 1)
        #expect(next(1) == nil, "minThreads")
        #expect(next(1) == nil)
    }

    @Test func governorKeepsThreadsTheLoadNeeds() {
        var policy = GovernorPolicy(
            settings: governorSettings(threshold: 50, minThreads: 1, idle: .seconds(1)),
            autoMaxDetect: false)
        var pool = FakePool()
        // 1.5 threads' worth of work: 2 threads stay (1 would be 150 % busy)...
        for _ in 0..<20 {
            #expect(
                policy.decide(
                    pool.sample(afterMilliseconds: 500, queue: 3, threads: 2, rate: 500, busyThreads: 1.5),
                    maxThreads: 8) == nil)
        }
        // ...and of 3, one goes (2 would be 75 % busy, within the 80 % headroom).
        var changes: [Int] = []
        for _ in 0..<3 {
            if let c = policy.decide(
                pool.sample(afterMilliseconds: 500, queue: 0, threads: 3, rate: 500, busyThreads: 1.5),
                maxThreads: 8)
            {
                changes.append(c.threads)
            }
        }
        #expect(changes == [2])
        // 1.7 threads' worth with 3: 2 would be 85 % busy: none goes.
        for _ in 0..<10 {
            #expect(
                policy.decide(
                    pool.sample(afterMilliseconds: 500, queue: 0, threads: 3, rate: 500, busyThreads: 1.7),
                    maxThreads: 8) == nil)
        }
    }

    @Test func governorIdleClockRestartsOnABusyInterval() {
        var policy = GovernorPolicy(settings: governorSettings(threshold: 50, idle: .seconds(1)), autoMaxDetect: false)
        var pool = FakePool()
        _ = policy.decide(pool.sample(afterMilliseconds: 0, queue: 0, threads: 2), maxThreads: 4)
        #expect(policy.decide(pool.sample(afterMilliseconds: 500, queue: 0, threads: 2), maxThreads: 4) == nil)
        #expect(
            policy.decide(
                pool.sample(afterMilliseconds: 500, queue: 0, threads: 2, busyThreads: 1.9),
                maxThreads: 4) == nil, "busy: not idle")
        #expect(policy.decide(pool.sample(afterMilliseconds: 500, queue: 0, threads: 2), maxThreads: 4) == nil)
        #expect(policy.decide(pool.sample(afterMilliseconds: 500, queue: 0, threads: 2), maxThreads: 4)?.threads == 1)
    }

    @Test func autoMaxDetectBacksOffAThreadThatAddsNoThroughput() {
        var policy = GovernorPolicy(settings: governorSettings(threshold: 10), autoMaxDetect: true)
        var pool = FakePool()
        func next(_ queue: Int, _ threads: Int, _ rate: Double) -> GovernorPolicy.Change? {
            policy.decide(
                pool.sample(
                    afterMilliseconds: 1000, queue: queue, threads: threads, rate: rate,
                    busyThreads: Double(threads)), maxThreads: 8)
        }
        #expect(next(100, 2, 200)?.threads == 3)  // no interval yet: no probe
        #expect(next(200, 3, 300)?.threads == 4)  // backlogged at 300/s with 3: probe
        // With 4, 310/s: under 300 × (1 + 0.5/3) = 350.
        #expect(next(300, 4, 310) == .init(threads: 3, reason: .noThroughputGain(threads: 3, before: 300, after: 310)))
        #expect(policy.learnedMax == 3)
        for _ in 1..<ThreadGovernor.autoMaxHoldSamples {
            #expect(next(400, 3, 300) == nil, "held at the size found best")
        }
        #expect(next(500, 3, 300)?.threads == 4, "then it probes again")
        #expect(policy.learnedMax == nil)
        #expect(next(600, 4, 400)?.threads == 5, "this time the thread pays: kept, and the pool grows on")
    }

    @Test func autoMaxDetectKeepsAThreadThatRaisesThroughput() {
        var policy = GovernorPolicy(settings: governorSettings(threshold: 10), autoMaxDetect: true)
        var pool = FakePool()
        func next(_ queue: Int, _ threads: Int, _ rate: Double) -> GovernorPolicy.Change? {
            policy.decide(
                pool.sample(
                    afterMilliseconds: 1000, queue: queue, threads: threads, rate: rate,
                    busyThreads: Double(threads)), maxThreads: 8)
        }
        #expect(next(100, 2, 200)?.threads == 3)
        #expect(next(200, 3, 300)?.threads == 4)
        #expect(next(300, 4, 400)?.threads == 5, "400 ≥ 350: kept, and still backlogged: grow")
        #expect(policy.learnedMax == nil)
    }

    // The governor on a real runtime, with a manual clock and a gated stage.

    @Test func governorGrowsAndShrinksAGatedStage() throws {
        let life = Life()
        let clock = SedaClock.manual()
        let runtime = try Runtime(cpuThreads: 1, clock: clock)
        let gate = PoolGate()
        let gated = GatedHandler(gate: gate)
        let sink = try runtime.addStage(
            "gated", handler: gated,
            options: StageOptions(
                threadManager: .dedicated(threads: 1, maxThreads: 3), batchSize: 1, queueCapacity: 64))
        for i in 0..<20 { try sink.enqueue(Job(i, life)) }
        waitUntil("the first thread holds an event") { gated.entered.value == 1 }

        let governor = try ThreadGovernor(
            runtime: runtime,
            settings: governorSettings(
                threshold: 5, idle: .seconds(1), delay: .milliseconds(500)))
        try governor.govern("gated")
        #expect(governor.governedStages == ["gated"])

        #expect(governor.tick().map(\.new) == [2])
        waitUntil("the second thread holds an event") { gated.entered.value == 2 }
        try clock.advance(by: .milliseconds(500))
        #expect(governor.tick().map(\.new) == [3])
        waitUntil("the third thread holds an event") { gated.entered.value == 3 }
        try clock.advance(by: .milliseconds(500))
        #expect(governor.tick().isEmpty, "at maxThreads")
        #expect(runtime.snapshot()[stage: "gated"]?.threads == 3)
        let t0 = clock.now - 1_000_000_000
        #expect(
            governor.decisions == [
                ControllerDecision(
                    timeNanoseconds: t0, stage: "gated", knob: .threads, old: 1, new: 2,
                    reason: .queueAtThreshold(queueLength: 19, threshold: 5)),
                ControllerDecision(
                    timeNanoseconds: t0 + 500_000_000, stage: "gated", knob: .threads, old: 2, new: 3,
                    reason: .queueAtThreshold(queueLength: 18, threshold: 5)),
            ])

        gate.open()
        waitUntil("all processed") { runtime.snapshot()[stage: "gated"]?.processed == 20 }
        // The blocked calls' handler time lands now: a sample with the clock
        // unmoved takes it into the baseline.
        #expect(governor.tick().isEmpty)
        try clock.advance(by: .seconds(1))
        let shrink = governor.tick()
        #expect(shrink.map(\.new) == [2])
        #expect(shrink.first?.reason == .idle(for: .seconds(1), busyThreads: 0))
        try clock.advance(by: .milliseconds(500))
        #expect(governor.tick().isEmpty, "idle for 0.5 s since the last removal")
        try clock.advance(by: .milliseconds(500))
        #expect(governor.tick().map(\.new) == [1])
        try clock.advance(by: .seconds(5))
        #expect(governor.tick().isEmpty, "minThreads")
        waitUntil("the surplus threads exit") { runtime.snapshot()[stage: "gated"]?.threads == 1 }
        #expect(governor.decisions.count == 4)

        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func governorRefusesWhatItCannotGovern() throws {
        let runtime = try Runtime(cpuThreads: 1)
        _ = try runtime.addStage("shared", handler: DiscardJobs())
        _ = try runtime.addStage(
            "pool", handler: DiscardJobs(),
            options: StageOptions(threadManager: .dedicated(threads: 1, maxThreads: 2)))
        let governor = try ThreadGovernor(runtime: runtime)
        #expect(governor.interval == .seconds(2))
        #expect(throws: SedaError.notSupported) { try governor.govern("shared") }
        #expect(throws: SedaError.noSuchStage("nope")) { try governor.govern("nope") }
        #expect(
            throws: SedaError.invalidConfiguration(
                "thread governor, stage 'pool': minThreads 3 is above its maxThreads 2")
        ) {
            try governor.govern("pool", settings: governorSettings(threshold: 10, minThreads: 3))
        }
        try governor.govern("pool")
        governor.stopGoverning("pool")
        #expect(governor.governedStages.isEmpty)
        try runtime.shutdown()
    }

    // The seed's governor experiment, scaled down: 500 events/s, 15 % of
    // them sleep 20 ms (λpL = 1.5 threads of work), sampled every 250 ms on
    // the governor's own thread. Behaviour only: no duration is asserted.
    @Test func governorSettlesTheSeedExperiment() throws {
        let life = Life()
        let runtime = try Runtime(cpuThreads: 1)
        let maxThreads = 8, threshold = 100
        let handler = SometimesSlow()
        let sink = try runtime.addStage(
            "logger", handler: handler,
            options: StageOptions(
                threadManager: .dedicated(threads: 1, maxThreads: maxThreads), batchSize: 1, queueCapacity: 1 << 14))
        let governor = try ThreadGovernor(
            runtime: runtime,
            settings: governorSettings(
                threshold: threshold, idle: .seconds(1), delay: .milliseconds(250)))
        try governor.govern("logger")
        try governor.start()

        let rate = 500, seconds = 6
        let events = rate * seconds
        let producer = startThread(name: "load") {
            // Open loop: event i is due at start + i/rate, whatever the stage does.
            let start = monotonicNanoseconds()
            for i in 0..<events {
                sleepUntil(start + Int64(i) * 1_000_000_000 / Int64(rate))
                try! sink.enqueue(Job(i, life))  // the queue holds the whole run
            }
        }
        var samples: [(threads: Int, queue: Int)] = []
        let start = monotonicNanoseconds()
        for k in 1...(seconds * 4) {
            sleepUntil(start + Int64(k) * 250_000_000)
            let s = runtime.snapshot()[stage: "logger"]!
            samples.append((s.concurrency, Int(s.queueLength)))
        }
        producer.join()
        governor.stop()
        let decisions = governor.decisions
        waitUntil("all handled") { handler.handled.value == events }
        try runtime.shutdown()
        #expect(life.balanced)

        let final = samples.last!.threads
        #expect((2...4).contains(final), "settled at \(final) threads; samples \(samples); decisions \(decisions)")
        #expect(samples.suffix(3).allSatisfy { $0.queue < threshold }, "queue at the end: \(samples.suffix(3))")
        #expect(samples.allSatisfy { $0.threads <= maxThreads })
        #expect(decisions.allSatisfy { $0.new <= maxThreads && $0.stage == "logger" && $0.knob == .threads })
        #expect(decisions.first.map { $0.old == 1 && $0.new == 2 } == true, "\(decisions)")
    }

    // MARK: - Batching controller

    /// Runs the climb against a made-up stage whose throughput is `rate(b)`.
    func climb(
        _ rate: (Int) -> Double, from start: Int, minBatch: Int = 1, maxBatch: Int = 64,
        windows: Int
    ) -> [Int] {
        var settings = BatchControllerSettings(maxBatch: maxBatch)
        settings.minBatch = minBatch
        var policy = BatchPolicy(settings: settings, tolerance: 0.05)
        var time: Int64 = 0, processed: UInt64 = 0, b = start
        _ = policy.decide(BatchSample(time: time, processed: processed, batchSize: b))
        var path: [Int] = []
        for _ in 0..<windows {
            time += 1_000_000_000
            processed += UInt64(rate(b))
            if let c = policy.decide(BatchSample(time: time, processed: processed, batchSize: b)) { b = c.batchSize }
            path.append(b)
        }
        return path
    }

    @Test func batchClimbSettlesAtTheKnee() {
        // Throughput grows with the batch up to 25 events, then is flat.
        let path = climb({ min(1000, 40 * Double($0)) }, from: 64, windows: 80)
        #expect(path.allSatisfy { (1...64).contains($0) })
        let late = path.suffix(40)
        #expect(late.allSatisfy { (17...40).contains($0) }, "\(path)")
        #expect(late.min()! <= 25 && late.max()! >= 25, "it straddles the knee: \(path)")
    }

    @Test func batchClimbStaysHighWhenLargeBatchesPay() {
        // Throughput grows with the batch beyond maxBatch.
        let path = climb({ 10 * Double($0) }, from: 64, windows: 30)
        #expect(path.prefix(2) == [51, 64], "one step down, worse: back up")
        #expect(path.suffix(20).allSatisfy { $0 == 64 }, "\(path)")
    }

    @Test func batchClimbGoesBackUpFromASmallBatch() {
        let path = climb({ min(1000, 40 * Double($0)) }, from: 4, windows: 40)
        #expect(path.prefix(2) == [3, 4], "down first, worse: back up")
        #expect(path.suffix(10).allSatisfy { (17...40).contains($0) }, "\(path)")
    }

    @Test func batchControllerTurnsARealStageDownWhenThroughputHolds() throws {
        let life = Life()
        let clock = SedaClock.manual()
        let runtime = try Runtime(cpuThreads: 1, clock: clock)
        let recorder = Recorder()
        let sink = try runtime.addStage(
            "agg", handler: recorder, options: StageOptions(batchSize: 64, queueCapacity: 4096))
        let controller = try BatchController(runtime: runtime, interval: .seconds(1))
        var settings = BatchControllerSettings(maxBatch: 64)
        settings.minBatch = 8
        try controller.control("agg", settings: settings)
        #expect(controller.controlledStages == ["agg"])
        #expect(controller.tick().isEmpty, "the first sample is the baseline")

        var sent = 0
        func window(_ n: Int) throws -> [ControllerDecision] {
            try sink.enqueueMany((sent..<sent + n).map { Job($0, life) })
            sent += n
            waitUntil("window handled") { recorder.received.value == sent }
            // `processed` counts a batch once its handler has returned.
            waitUntil("window counted") { runtime.snapshot()[stage: "agg"]?.processed == UInt64(sent) }
            try clock.advance(by: .seconds(1))
            return controller.tick()
        }
        let first = try window(1000)
        #expect(first.map(\.new) == [51])
        #expect(first.first?.reason == .firstWindow(rate: 1000))
        #expect(first.first?.knob == .batchSize)
        var sizes = [51]
        for _ in 0..<12 { sizes += try window(1000).map(\.new) }
        #expect(sizes == [51, 41, 33, 26, 21, 17, 14, 11, 9, 8], "the same throughput: down to minBatch")
        #expect(controller.decisions.dropFirst().allSatisfy { $0.reason == .throughputHeld(rate: 1000) })
        #expect(runtime.snapshot()[stage: "agg"]?.batchSize == 8)
        try clock.advance(by: .seconds(1))
        #expect(controller.tick().isEmpty, "a window with nothing processed changes nothing")
        let before = recorder.batches.count
        _ = try window(500)
        #expect(recorder.batches[before...].allSatisfy { $0 <= 8 })
        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func controllersAreBuiltFromConfiguration() throws {
        var code = SedaSettings(sizeControllerDelay: .milliseconds(250), autoMaxDetect: true)
        code.stages["pool"] = StageSettings(
            threadManager: .dedicated, threads: 2, maxThreads: 6, minThreads: 2,
            sizeControllerEnabled: true, sizeControllerThreshold: 7)
        code.stages["plain"] = StageSettings(threadManager: .dedicated, threads: 1)
        code.stages["batched"] = StageSettings(
            batchSize: 32, batchControllerEnabled: true, minBatch: 4,
            recalcWindow: .milliseconds(500), smoothConst: 0.5)
        let configuration = try SedaConfiguration(code: code, environment: [:])
        let runtime = try Runtime(configuration: configuration)
        for name in ["pool", "plain", "batched"] {
            try runtime.addStage(name, handler: DiscardJobs(), configuration: configuration)
        }
        let governor = try ThreadGovernor(runtime: runtime, configuration: configuration)
        #expect(governor.interval == .milliseconds(250))
        #expect(governor.autoMaxDetect)
        #expect(governor.governedStages == ["pool"])
        let batching = try BatchController(runtime: runtime, configuration: configuration)
        #expect(batching.interval == .milliseconds(500))
        #expect(batching.controlledStages == ["batched"])

        // Nothing configured: defaults, nothing governed.
        let bare = try ThreadGovernor(runtime: runtime, configuration: SedaConfiguration(environment: [:]))
        #expect(bare.interval == .seconds(2))
        #expect(bare.governedStages.isEmpty)
        try runtime.shutdown()
    }

    @Test func controllerThreadsStartAndStop() throws {
        let runtime = try Runtime(cpuThreads: 1)
        _ = try runtime.addStage("agg", handler: DiscardJobs())
        let controller = try BatchController(runtime: runtime, interval: .milliseconds(5))
        try controller.control("agg", settings: BatchControllerSettings(maxBatch: 64))
        try controller.start()
        try controller.start()  // a second start does nothing
        usleep(30_000)
        controller.stop()
        controller.stop()
        let governor = try ThreadGovernor(
            runtime: runtime,
            settings: governorSettings(
                threshold: 10,
                delay: .milliseconds(5)))
        try governor.start()
        usleep(20_000)
        // Dropped while running: deinit stops its thread.
        _ = consume governor
        try runtime.shutdown()
    }
}
