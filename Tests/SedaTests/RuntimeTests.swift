import CSedaCore
import Glibc
import Synchronization
import Testing

@_spi(Threads) @testable import Seda

/// An event for stage tests: a number, a time-to-live, and a deinit counter.
final class Job: Sendable {
    let n: Int
    let ttl: Atomic<Int>
    let life: Life
    init(_ n: Int, ttl: Int = 0, _ life: Life) {
        self.n = n
        self.ttl = Atomic(ttl)
        self.life = life
        life.created.add(1)
    }
    deinit { life.destroyed.add(1) }
}

/// Counts events made and freed, to prove none leaks and none is freed twice.
final class Life: Sendable {
    let created = Counter()
    let destroyed = Counter()
    var balanced: Bool { created.value == destroyed.value }
}

/// Enqueues, retrying while the sink is full; other errors are thrown.
func enqueueRetrying(_ sink: Sink<Job>, _ job: Job) throws(SedaError) {
    while true {
        do throws(SedaError) {
            try sink.enqueue(job)
            return
        } catch let error {
            guard error == .full else { throw error }
            sched_yield()
        }
    }
}

/// Forwards every event to the next stage, retrying while it is full.
struct Forward: EventHandler {
    let next: Sink<Job>
    func handle(_ batch: inout EventBatch<Job>) throws {
        for i in 0..<batch.count {
            if let job = batch.take(i) { try enqueueRetrying(next, job) }
        }
    }
}

/// Records the order events arrive in and the batch sizes.
final class Recorder: EventHandler, @unchecked Sendable {
    // @unchecked: the stage has concurrency 1, so handle() never runs twice
    // at once; tests read the state after the runtime quiesced.
    private(set) var seen: [Int] = []
    private(set) var batches: [Int] = []
    let received = Counter()
    func handle(_ batch: inout EventBatch<Job>) throws {
        batches.append(batch.count)
        batch.forEach { seen.append($0.n) }
        received.add(batch.count)
    }
}

func waitUntil(_ what: String, _ condition: () -> Bool) {
    // A liveness guard, not a timing assertion: 20 s is far past any honest delay.
    let deadline = SedaClock.monotonic.now + 20_000_000_000
    while !condition() {
        precondition(SedaClock.monotonic.now < deadline, "gave up waiting for \(what)")
        usleep(1000)
    }
}

@Suite("Runtime")
struct RuntimeTests {
    @Test(arguments: [ThreadManager.shared(), .dedicated(threads: 1)])
    func pipelineKeepsOrderAndLeaksNothing(manager: ThreadManager) throws {
        let life = Life()
        let runtime = try Runtime()
        let recorder = Recorder()
        let big = StageOptions(threadManager: manager, batchSize: 16, queueCapacity: 1 << 15)
        let c = try runtime.addStage("c", handler: recorder, options: big)
        let b = try runtime.addStage("b", handler: Forward(next: c), options: big)
        let a = try runtime.addStage("a", handler: Forward(next: b), options: big)
        let n = 20_000
        for i in 0..<n { try enqueueRetrying(a, Job(i, life)) }
        waitUntil("all events at c") { recorder.received.value == n }
        #expect(recorder.seen == Array(0..<n))
        #expect(recorder.batches.allSatisfy { $0 >= 1 && $0 <= 16 })

        let snap = runtime.snapshot()
        #expect(snap.stages.map(\.name) == ["c", "b", "a"])
        #expect(snap[stage: "b"]?.processed == UInt64(n))
        #expect(snap[stage: "b"]?.enqueued == UInt64(n))
        #expect(snap[stage: "a"]?.downstream == ["b"])
        #expect(snap[stage: "c"]?.queueDelay.count == UInt64(n))
        let decision = ControllerDecision(
            timeNanoseconds: 0, stage: "b", knob: .batchSize, old: 16, new: 8,
            reason: .throughputHeld(rate: 1))
        let dot = snap.graphviz(since: snap, decisions: [decision])
        #expect(dot.contains("16 → 8"), "controller decisions show in the profiler's graph")
        #expect(dot.contains("\"a\" -> \"b\""))
        #expect(dot.contains("\"b\" -> \"c\""))

        try runtime.shutdown(.drain)
        #expect(life.balanced, "every event freed exactly once")
        #expect(throws: SedaError.closed) { try a.enqueue(Job(-1, life)) }
        #expect(life.balanced)
    }

    @Test func batchesNeverExceedBatchSize() throws {
        let life = Life()
        let runtime = try Runtime(cpuThreads: 1)
        let recorder = Recorder()
        let sink = try runtime.addStage("r", handler: recorder, options: StageOptions(batchSize: 8))
        try sink.enqueueMany((0..<500).map { Job($0, life) })
        waitUntil("500 events") { recorder.received.value == 500 }
        #expect(recorder.batches.max()! <= 8)
        #expect(recorder.seen == Array(0..<500))
        #expect(runtime.snapshot()[stage: "r"]?.batchSize == 8)
        try runtime.setBatchSize(2, forStage: "r")
        #expect(runtime.snapshot()[stage: "r"]?.batchSize == 2)
        #expect(throws: SedaError.invalidArgument) { try runtime.setBatchSize(0, forStage: "r") }
        try sink.enqueueMany((500..<600).map { Job($0, life) })
        waitUntil("600 events") { recorder.received.value == 600 }
        #expect(recorder.batches.suffix(from: recorder.batches.count - 50).allSatisfy { $0 <= 2 })
        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func sinksAreFoundByNameAndType() throws {
        let runtime = try Runtime()
        _ = try runtime.addStage("jobs", handler: Recorder())
        _ = try runtime.sink(named: "jobs", of: Job.self)
        #expect(throws: SedaError.noSuchStage("nope")) { try runtime.sink(named: "nope", of: Job.self) }
        #expect(throws: SedaError.eventTypeMismatch(stage: "jobs", expected: "Life", actual: "Job")) {
            try runtime.sink(named: "jobs", of: Life.self)
        }
        // A duplicate name names the stage.
        #expect(throws: SedaError.stageExists("jobs")) { try runtime.addStage("jobs", handler: Recorder()) }
        #expect("\(SedaError.stageExists("jobs"))".contains("'jobs'"))
        #expect(runtime.stageNames == ["jobs"])
        try runtime.shutdown()
    }

    @Test func badOptionsAreClearErrors() throws {
        let runtime = try Runtime()
        #expect(throws: SedaError.invalidConfiguration("stage 'x': batchSize 0 is not in 1...1024")) {
            try runtime.addStage("x", handler: Recorder(), options: StageOptions(batchSize: 0))
        }
        #expect(throws: SedaError.invalidConfiguration("stage 'x': maxThreads 1 is below threads 2")) {
            try runtime.addStage(
                "x", handler: Recorder(),
                options: StageOptions(threadManager: .dedicated(threads: 2, maxThreads: 1)))
        }
        #expect(throws: SedaError.invalidConfiguration("cpuThreads 0 is not in 1...1024")) {
            try Runtime(cpuThreads: 0)
        }
        try runtime.shutdown()
    }

    struct Flaky: EventHandler {
        struct Boom: Error {}
        let handled = Counter()
        func handle(_ batch: inout EventBatch<Job>) throws {
            handled.add(batch.count)
            if batch[0]!.n % 2 == 0 { throw Boom() }
        }
    }

    @Test func aThrowingHandlerIsCountedAndTheThreadCarriesOn() throws {
        let life = Life()
        let runtime = try Runtime()
        let flaky = Flaky()
        let sink = try runtime.addStage("flaky", handler: flaky, options: StageOptions(batchSize: 1))
        for i in 0..<10 { try sink.enqueue(Job(i, life)) }
        waitUntil("10 handled") { flaky.handled.value == 10 }
        waitUntil("counted") { runtime.snapshot()[stage: "flaky"]?.processed == 10 }
        #expect(runtime.snapshot()[stage: "flaky"]?.handlerErrors == 5)
        try runtime.shutdown()
        #expect(life.balanced)
    }

    /// Stage that bounces each job to a peer until its ttl runs out.
    struct Bounce: EventHandler {
        let peer: Lock<Sink<Job>?>
        let finished: Counter
        func handle(_ batch: inout EventBatch<Job>) throws {
            let peer = self.peer.withLock { $0 }!
            for i in 0..<batch.count {
                let job = batch.take(i)!
                if job.ttl.subtract(1, ordering: .relaxed).newValue < 0 {
                    finished.add(1)
                    continue
                }
                try peer.enqueue(job)  // capacity covers every job: never full
            }
        }
    }

    @Test func drainingShutdownQuiescesACycle() throws {
        let life = Life()
        let runtime = try Runtime()
        let finished = Counter()
        let toPong = Lock<Sink<Job>?>(nil), toPing = Lock<Sink<Job>?>(nil)
        let opts = StageOptions(batchSize: 16, queueCapacity: 4096)
        let ping = try runtime.addStage("ping", handler: Bounce(peer: toPong, finished: finished), options: opts)
        let pong = try runtime.addStage("pong", handler: Bounce(peer: toPing, finished: finished), options: opts)
        toPong.withLock { $0 = pong }
        toPing.withLock { $0 = ping }
        for i in 0..<1000 { try ping.enqueue(Job(i, ttl: 100, life)) }
        waitUntil("bouncing") { runtime.snapshot().stages.allSatisfy { $0.downstream.count == 1 } }
        try runtime.shutdown(.drain)
        #expect(finished.value == 1000, "every job ran its course before shutdown returned")
        // The final totals stay readable after the shutdown, graph included.
        let final = runtime.snapshot()
        #expect(final.stages.map(\.name) == ["ping", "pong"])
        #expect(final.stages.map(\.processed).reduce(0, +) == 1000 * 101, "each job: 1 + 100 hops")
        #expect(final.stages.allSatisfy { $0.handedBack == 0 && $0.queueLength == 0 })
        #expect(final[stage: "ping"]?.downstream == ["pong"] && final[stage: "pong"]?.downstream == ["ping"])
        #expect(runtime.stageNames.isEmpty, "no stage is live any more")
        toPong.withLock { $0 = nil }
        toPing.withLock { $0 = nil }
        #expect(life.balanced)
    }

    /// The final graph has the edges first used while draining: `first`
    /// forwards nothing until the shutdown has begun.
    @Test func theFinalGraphHasTheEdgesOfTheDrain() throws {
        let life = Life()
        let runtime = try Runtime()
        struct GatedForward: EventHandler {
            let gate: PoolGate
            let next: Sink<Job>
            func handle(_ batch: inout EventBatch<Job>) throws {
                while !gate.isOpen { usleep(200) }
                for i in 0..<batch.count {
                    if let job = batch.take(i) { try enqueueRetrying(next, job) }
                }
            }
        }
        let gate = PoolGate()
        let second = try runtime.addStage("second", handler: DiscardJobs())
        let first = try runtime.addStage(
            "first", handler: GatedForward(gate: gate, next: second),
            options: StageOptions(threadManager: .dedicated(threads: 1)))
        let probe = try runtime.addStage("probe", handler: DiscardJobs())
        for i in 0..<10 { try first.enqueue(Job(i, life)) }
        #expect(runtime.snapshot()[stage: "first"]?.downstream == [])
        // Outside enqueues fail with .closed from the shutdown's start on.
        let opener = startThread(name: "opener") {
            waitUntil("stopping") {
                do throws(SedaError) {
                    try probe.enqueue(Job(-1, life))
                    return false
                } catch {
                    return error == .closed
                }
            }
            gate.open()
        }
        try runtime.shutdown(.drain)
        opener.join()
        let final = runtime.snapshot()
        #expect(final[stage: "second"]?.processed == 10)
        #expect(final[stage: "first"]?.downstream == ["second"])
        #expect(final[stage: "second"]?.downstream == [])
        #expect(life.balanced)
    }

    struct Sleepy: EventHandler {
        let handled = Counter()
        let tornDown = Counter()
        func handle(_ batch: inout EventBatch<Job>) throws {
            usleep(2000)
            handled.add(batch.count)
        }
        func tearDown() { tornDown.add(1) }
    }

    @Test(arguments: [ThreadManager.shared(), .dedicated(threads: 2)])
    func handBackShutdownReleasesWhatIsQueued(manager: ThreadManager) throws {
        let life = Life()
        let runtime = try Runtime()
        let sleepy = Sleepy()
        let sink = try runtime.addStage(
            "sleepy", handler: sleepy,
            options: StageOptions(threadManager: manager, batchSize: 2))
        for i in 0..<300 { try sink.enqueue(Job(i, life)) }
        try runtime.shutdown(.handBack)
        #expect(sleepy.tornDown.value == 1)
        #expect(sleepy.handled.value < 300, "most events were handed back, not processed")
        #expect(life.balanced, "handed-back events were released")
        #expect(throws: SedaError.closed) { try runtime.shutdown() }
    }

    @Test func stagesComeAndGoUnderTraffic() throws {
        let life = Life()
        let runtime = try Runtime()
        let first = Recorder()
        let sink = try runtime.addStage("victim", handler: first, options: StageOptions(queueCapacity: 64))
        let accepted = Counter()
        let producer = startThread(name: "producer") {
            for i in 0..<200_000 {
                do throws(SedaError) {
                    try enqueueRetrying(sink, Job(i, life))
                    accepted.add(1)
                } catch {
                    return  // closed: the stage is gone
                }
            }
        }
        waitUntil("traffic") { first.received.value > 100 }
        try runtime.destroyStage(named: "victim", mode: .drain)
        producer.join()
        #expect(first.received.value == accepted.value, "a draining destroy processes all it accepted")
        #expect(throws: SedaError.noSuchStage("victim")) { try runtime.sink(named: "victim", of: Job.self) }
        let second = Recorder()
        let again = try runtime.addStage("victim", handler: second)
        try again.enqueue(Job(1, life))
        waitUntil("new stage works") { second.received.value == 1 }
        try runtime.shutdown()
        #expect(life.balanced)
    }

    @Test func dedicatedPoolResizes() throws {
        let runtime = try Runtime()
        _ = try runtime.addStage(
            "pool", handler: Sleepy(),
            options: StageOptions(threadManager: .dedicated(threads: 1, maxThreads: 3)))
        #expect(runtime.snapshot()[stage: "pool"]?.threads == 1)
        try runtime.setThreads(3, forStage: "pool")
        #expect(runtime.snapshot()[stage: "pool"]?.threads == 3)
        try runtime.setThreads(1, forStage: "pool")
        waitUntil("pool shrinks") { runtime.snapshot()[stage: "pool"]?.threads == 1 }
        #expect(throws: SedaError.invalidArgument) { try runtime.setThreads(4, forStage: "pool") }
        _ = try runtime.addStage("shared", handler: Sleepy())
        #expect(throws: SedaError.notSupported) { try runtime.setThreads(2, forStage: "shared") }
        try runtime.shutdown()
    }

    @Test func statisticsFollowAManualClock() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        struct Tick: EventHandler {
            let clock: SedaClock
            func handle(_ batch: inout EventBatch<Job>) throws {
                try clock.advance(by: .milliseconds(5 * batch.count))
            }
        }
        let life = Life()
        let sink = try runtime.addStage(
            "tick", handler: Tick(clock: clock),
            options: StageOptions(threadManager: .dedicated(threads: 1)))
        try sink.enqueueMany((0..<4).map { Job($0, life) })
        waitUntil("processed") { runtime.snapshot()[stage: "tick"]?.processed == 4 }
        let s = runtime.snapshot()[stage: "tick"]!
        #expect(s.handlerNanoseconds == 20_000_000)
        #expect(s.serviceTime.maxNanoseconds == 5_000_000)
        try runtime.shutdown()
        #expect(life.balanced)
    }
}

@Suite("Backpressure")
struct BackpressureTests {
    @Test func producersCanWaitForRoom() async throws {
        let life = Life()
        let runtime = try Runtime()
        let gate = Gate()
        let sink = try runtime.addStage(
            "gated", handler: gate,
            options: StageOptions(
                threadManager: .dedicated(threads: 1),
                batchSize: 1, queueCapacity: 2))
        try sink.enqueue(Job(0, life))
        waitUntil("handler holds the thread") { gate.entered.value == 1 }
        try sink.enqueue(Job(1, life))
        try sink.enqueue(Job(2, life))
        #expect(throws: SedaError.full) { try sink.enqueue(Job(3, life)) }
        #expect(throws: SedaError.timedOut) { try sink.enqueue(Job(3, life), timeout: .milliseconds(2)) }
        await #expect(throws: SedaError.timedOut) { try await sink.enqueue(Job(3, life), timeout: .milliseconds(2)) }
        // Once the stage makes room, a blocked thread and an async task both get in.
        let blocked = startThread(name: "blocked") { try? sink.enqueue(Job(4, life), timeout: nil) }
        gate.open.add(1)
        try await sink.enqueue(Job(5, life), timeout: .seconds(30))
        blocked.join()
        waitUntil("all handled") { gate.inner.received.value == 5 }
        #expect(Set(gate.inner.seen) == [0, 1, 2, 4, 5])
        try runtime.shutdown()
        #expect(life.balanced)
    }

    /// Enqueues each event into `target` with a timeout; records nil for
    /// an accepted one, else the error.
    struct WaitsOnShared: EventHandler {
        let target: Lock<Sink<Job>?>
        let results: Lock<[SedaError?]>
        func handle(_ batch: inout EventBatch<Job>) throws {
            let target = self.target.withLock { $0 }!
            for i in 0..<batch.count {
                guard let job = batch.take(i) else { continue }
                do throws(SedaError) {
                    try target.enqueue(job, timeout: .seconds(1))
                    results.withLock { $0.append(nil) }
                } catch {
                    results.withLock { $0.append(error) }
                }
            }
        }
    }

    /// A handler on the shared threads may not wait, but an enqueue with a
    /// timeout that finds room needs no wait: it succeeds (it used to throw
    /// .wouldDeadlock whatever the queue held). Only a full queue refuses,
    /// counted as full.
    @Test func handlersOnTheSharedThreadsMayNotWait() throws {
        let life = Life()
        let runtime = try Runtime()
        let target = Lock<Sink<Job>?>(nil), results = Lock<[SedaError?]>([])
        let gate = Gate()
        let other = try runtime.addStage(
            "other", handler: gate,
            options: StageOptions(
                threadManager: .dedicated(threads: 1), batchSize: 1, queueCapacity: 2))
        target.withLock { $0 = other }
        try other.enqueue(Job(100, life))
        waitUntil("held") { gate.entered.value == 1 }
        let sink = try runtime.addStage("waits", handler: WaitsOnShared(target: target, results: results))
        try sink.enqueue(Job(0, life))
        waitUntil("handled") { results.withLock { $0.count } == 1 }
        #expect(results.withLock { $0 } == [nil], "room: accepted without waiting")
        try other.enqueue(Job(101, life))  // now full
        try sink.enqueue(Job(1, life))
        waitUntil("handled") { results.withLock { $0.count } == 2 }
        #expect(results.withLock { $0 } == [nil, .wouldDeadlock], "full: would have to wait")
        #expect(runtime.snapshot()[stage: "other"]?.rejectedFull == 1)
        #expect("\(SedaError.wouldDeadlock)".contains("handler waiting for room in a queue"))
        gate.open.add(1)
        target.withLock { $0 = nil }
        try runtime.shutdown()
        #expect(life.balanced)
    }
}

@Suite("Queue disciplines")
struct DisciplineTests {
    /// Each event takes 10 ms of (manual) clock; counts control events.
    struct Slow: EventHandler {
        let clock: SedaClock
        let handled = Counter()
        let controls = Counter()
        func handle(_ batch: inout EventBatch<Job>) throws {
            batch.forEach { if $0.n < 0 { controls.add(1) } }
            try clock.advance(by: .milliseconds(10 * batch.count))
            handled.add(batch.count)
        }
    }

    @Test func codelDropsUnderOverloadButNeverControlEvents() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let life = Life()
        let slow = Slow(clock: clock)
        let sink = try runtime.addStage(
            "codel", handler: slow,
            options: StageOptions(
                threadManager: .dedicated(threads: 1), batchSize: 1, queueCapacity: 512,
                discipline: .codel(target: .milliseconds(5), interval: .milliseconds(100))))
        for i in 0..<200 {
            if i % 20 == 0 { try sink.enqueueControl(Job(-1 - i, life)) } else { try sink.enqueue(Job(i, life)) }
        }
        waitUntil("settled") {
            let s = runtime.snapshot()[stage: "codel"]!
            return s.processed + s.dropped == 200
        }
        let s = runtime.snapshot()[stage: "codel"]!
        #expect(s.dropped > 0)
        #expect(slow.controls.value == 10, "control events are never dropped")
        try runtime.shutdown()
        #expect(life.balanced, "dropped events were released")
        #expect(
            throws: SedaError.invalidConfiguration(
                "stage 'x': codel target 0.0 seconds and interval 0.1 seconds must be positive")
        ) {
            try StageOptions(discipline: .codel(target: .zero, interval: .milliseconds(100))).validate(stage: "x")
        }
    }
}

extension DisciplineTests {
    @Test func strictPriorityClassesServeClassZeroFirst() throws {
        let life = Life()
        let runtime = try Runtime()
        let gate = Gate()
        let sink = try runtime.addStage(
            "prio", handler: gate,
            options: StageOptions(
                threadManager: .dedicated(threads: 1), batchSize: 1, queueCapacity: 16, priorityClasses: 3))
        try sink.enqueue(Job(100, life))
        waitUntil("held") { gate.entered.value == 1 }
        for i in 0..<3 {
            for c in (0..<3).reversed() { try sink.enqueue(Job(10 * c + i, life), priorityClass: c) }
        }
        try sink.enqueue(Job(23, life))  // plain: the last class
        try sink.enqueueControl(Job(3, life))  // control: class 0
        #expect(throws: SedaError.invalidArgument) { try sink.enqueue(Job(99, life), priorityClass: 3) }
        gate.open.add(1)
        waitUntil("all") { gate.inner.received.value == 12 }
        #expect(gate.inner.seen == [100, 0, 1, 2, 3, 10, 11, 12, 20, 21, 22, 23])
        try runtime.shutdown()
        #expect(life.balanced)
    }
}

final class Blob: SizedEvent, Sendable {
    let sizeInBytes: Int
    init(_ size: Int) { sizeInBytes = size }
}

struct BlobGate: EventHandler {
    let open = Counter()
    let entered = Counter()
    let handled = Counter()
    func handle(_ batch: inout EventBatch<Blob>) throws {
        entered.add(1)
        while open.value == 0 { usleep(200) }
        handled.add(batch.count)
    }
}

extension DisciplineTests {
    @Test func byteLimitCapsWhatTheQueueHolds() throws {
        let runtime = try Runtime()
        let gate = BlobGate()
        let limit = ByteLimit<Blob>(cap: 100)
        let sink = try runtime.addStage(
            "bytes", handler: gate,
            options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 1),
            admission: limit)
        try sink.enqueue(Blob(10))
        waitUntil("held") { gate.entered.value == 1 }
        #expect(limit.bytesHeld == 0, "the one in the handler has left the queue")
        try sink.enqueue(Blob(40))
        try sink.enqueue(Blob(40))
        #expect(limit.bytesHeld == 80)
        #expect(throws: SedaError.rejected(.bytes)) { try sink.enqueue(Blob(40)) }
        try sink.enqueue(Blob(20))
        #expect(!sink.enqueueLossy(Blob(1)))
        #expect(runtime.snapshot()[stage: "bytes"]?.rejectedByReason == ["bytes": 2])
        gate.open.add(1)
        waitUntil("drained") { gate.handled.value == 4 }
        #expect(limit.bytesHeld == 0)
        try runtime.shutdown()
    }
}

final class StateRecorder: EventHandler, @unchecked Sendable {
    // @unchecked: concurrency 1; read after waitUntil on the counter.
    private(set) var events: [String] = []
    let count = Counter()
    func handle(_ batch: inout EventBatch<StageStateEvent>) throws {
        batch.forEach { events.append($0.description) }
        count.add(batch.count)
    }
}

extension BackpressureTests {
    @Test func cloggedAndDrainedAreDeliveredAsEvents() throws {
        let life = Life()
        let runtime = try Runtime()
        let states = StateRecorder()
        let watcher = try runtime.addStage("watcher", handler: states)
        let gate = Gate()
        let sink = try runtime.addStage(
            "slow", handler: gate,
            options: StageOptions(
                threadManager: .dedicated(threads: 1), batchSize: 1,
                queueCapacity: 8))
        try runtime.watch(stage: "slow", notify: watcher)
        #expect(throws: SedaError.stageAlreadyWatched("slow")) { try runtime.watch(stage: "slow", notify: watcher) }
        try sink.enqueue(Job(0, life))
        waitUntil("held") { gate.entered.value == 1 }
        for i in 1...8 { try sink.enqueue(Job(i, life)) }
        #expect(throws: SedaError.full) { try sink.enqueue(Job(9, life)) }
        #expect(throws: SedaError.full) { try sink.enqueue(Job(10, life)) }  // still clogged: no second event
        waitUntil("clogged") { states.count.value == 1 }
        gate.open.add(1)
        waitUntil("drained") { states.count.value == 2 }
        #expect(states.events == ["slow clogged", "slow drained"])
        try runtime.shutdown()
        #expect(life.balanced)
    }
}

/// Forwards to `next`; when it is full, puts the event back into its own queue.
struct ForwardOrKeep: EventHandler {
    let me: Lock<Sink<Job>?>
    let next: Sink<Job>
    func handle(_ batch: inout EventBatch<Job>) throws {
        let me = self.me.withLock { $0 }!
        for i in 0..<batch.count {
            let job = batch.take(i)!
            do throws(SedaError) { try next.enqueue(job) } catch { try me.enqueue(job) }
        }
    }
}

struct SlowSink: EventHandler {
    let done = Counter()
    func handle(_ batch: inout EventBatch<Job>) throws {
        usleep(UInt32(100 * batch.count))
        done.add(batch.count)
    }
}

extension BackpressureTests {
    @Test func aStageWaitsWhileItsDownstreamIsClogged() throws {
        let life = Life()
        let runtime = try Runtime()
        let slow = SlowSink()
        let down = try runtime.addStage("down", handler: slow, options: StageOptions(batchSize: 8, queueCapacity: 8))
        let me = Lock<Sink<Job>?>(nil)
        let up = try runtime.addStage(
            "up", handler: ForwardOrKeep(me: me, next: down),
            options: StageOptions(
                batchSize: 8, queueCapacity: 4096,
                pauseWhenDownstreamClogged: true))
        me.withLock { $0 = up }
        for i in 0..<1000 { try up.enqueue(Job(i, life)) }
        waitUntil("all through") { slow.done.value == 1000 }
        let s = runtime.snapshot()
        #expect(s[stage: "up"]!.pauses > 0, "up waited for down instead of spinning on it")
        #expect(s[stage: "down"]!.queuePeak <= 8)
        #expect(
            throws: SedaError.invalidConfiguration(
                "stage 'x': pauseWhenDownstreamClogged needs the shared thread manager")
        ) {
            try StageOptions(threadManager: .dedicated(threads: 1), pauseWhenDownstreamClogged: true).validate(
                stage: "x")
        }
        me.withLock { $0 = nil }
        try runtime.shutdown()
        #expect(life.balanced)
    }
}

extension RuntimeTests {
    /// A stage whose name holds "." could never be configured (keys name a
    /// stage between dots): refused when it is made, saying why.
    @Test func stageNamesWithADotAreRefused() throws {
        let runtime = try Runtime()
        #expect(throws: SedaError.self) { try runtime.addStage("http.parse", handler: Recorder()) }
        do {
            try runtime.addStage("http.parse", handler: Recorder())
        } catch {
            #expect("\(error)".contains("'http.parse' contains '.'"))
        }
        #expect(throws: SedaError.self) { try runtime.addStage("", handler: Recorder()) }
        #expect(throws: SedaError.self) {
            try runtime.addStage(String(repeating: "x", count: SedaLimits.stageNameBytes + 1), handler: Recorder())
        }
        try runtime.addStage("http-parse", handler: Recorder())
        #expect(runtime.stageNames == ["http-parse"])
        try runtime.shutdown()
    }

    /// More events in one all-or-nothing enqueue than the queue can hold
    /// said only "invalid argument"; now it says how many and the capacity.
    @Test func aBatchBeyondTheCapacityNamesBoth() throws {
        let life = Life()
        let runtime = try Runtime()
        let gate = Gate()
        let small = try runtime.addStage(
            "small", handler: gate,
            options: StageOptions(threadManager: .dedicated(threads: 1), queueCapacity: 6))
        #expect(throws: SedaError.batchTooLarge(count: 9, capacity: 8)) {
            try small.enqueueMany((0..<9).map { Job($0, life) })
        }
        #expect(
            "\(SedaError.batchTooLarge(count: 9, capacity: 8))"
                == "9 events at once is more than the queue's capacity of 8")
        // A handler forwarding a batch too big for the next stage learns the same.
        let outcome = Lock<SedaError?>(nil)
        let hold = Counter()
        struct ForwardAll: EventHandler {
            let next: Sink<Job>
            let outcome: Lock<SedaError?>
            let hold: Counter
            func handle(_ batch: inout EventBatch<Job>) throws {
                if batch[0]?.n == -1 {  // the first batch holds the thread while the rest queue up
                    while hold.value == 0 { usleep(200) }
                    return
                }
                do throws(SedaError) { try batch.forward(to: next) } catch { outcome.withLock { $0 = error } }
            }
        }
        let front = try runtime.addStage(
            "front", handler: ForwardAll(next: small, outcome: outcome, hold: hold),
            options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 16))
        try front.enqueue(Job(-1, life))
        waitUntil("holding") { front.count == 0 }
        try front.enqueueMany((0..<12).map { Job($0, life) })
        hold.add(1)  // the next batch is all 12
        waitUntil("forwarded") { outcome.withLock { $0 } != nil }
        #expect(outcome.withLock { $0 } == .batchTooLarge(count: 12, capacity: 8))
        gate.open.add(1)
        try runtime.shutdown()
        #expect(life.balanced)
    }

    /// A second watcher for one stage was refused, but kept for the life of
    /// the runtime all the same: a leak per refusal.
    @Test func aRefusedWatcherIsNotKept() throws {
        let runtime = try Runtime()
        let states = try runtime.addStage("states", handler: StateRecorder())
        try runtime.addStage("watched", handler: Recorder())
        try runtime.watch(stage: "watched", notify: states)
        for _ in 0..<3 {
            #expect(throws: SedaError.stageAlreadyWatched("watched")) {
                try runtime.watch(stage: "watched", notify: states)
            }
        }
        #expect(runtime.watchers.withLock { $0.count } == 1)
        try runtime.shutdown()
    }

    /// A handler that blocks the shared threads (bug 7, new user 3): the C
    /// core notices, logs a warning once through the runtime's logger with
    /// the stage as metadata, and counts every such batch in the stage's
    /// statistics.
    @Test func aBlockedHandlerIsLoggedOnceAndCounted() throws {
        let log = LogCapture()
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock, logger: log.logger)
        let blocker = SharedThreadBlocker()
        let sink = try runtime.addStage("sleepy", handler: blocker)
        try blocker.pass(Job(0, Life()), through: sink, runtime: runtime)  // a quick batch first
        for n in 1...2 { try blocker.block(Job(n, Life()), in: sink, runtime: runtime, clock: clock) }
        #expect(runtime.snapshot()[stage: "sleepy"]?.stalledBatches == 2)
        let lines = log.all.filter { $0.metadata["stage"] == "sleepy" && $0.level == .warning }
        #expect(lines.count == 1, "logged once per stage, counted every time")
        #expect(lines.first?.message.contains("blocked") == true)
        #expect(lines.first?.message.contains("dedicated") == true)
        try runtime.shutdown()
        #expect(runtime.snapshot()[stage: "sleepy"]?.stalledBatches == 2, "kept after shutdown")
    }
}

/// A handler on the shared threads that blocks each batch until the test
/// lets it go: a real blocking handler. The C core measures batches with the
/// runtime's clock, so a manual clock moved by a second while the handler
/// waits makes the batch "long" with no real time passing: nothing depends
/// on how fast the machine is.
final class SharedThreadBlocker: EventHandler, Sendable {
    let entered = Counter()
    let released = Counter()
    func handle(_ batch: inout EventBatch<Job>) throws {
        entered.add(1)
        let n = entered.value  // concurrency 1: no other call counts meanwhile
        while released.value < n { usleep(200) }
    }

    /// One batch that does not block.
    func pass(_ job: Job, through sink: Sink<Job>, runtime: Runtime) throws {
        let before = runtime.snapshot()[stage: sink.name]?.batches ?? 0
        released.add(1)
        try sink.enqueue(job)
        waitUntil("handled") { runtime.snapshot()[stage: sink.name]?.batches == before + 1 }
    }

    /// One batch that blocks the shared thread for a second of `clock`.
    func block(_ job: Job, in sink: Sink<Job>, runtime: Runtime, clock: SedaClock) throws {
        let before = runtime.snapshot()[stage: sink.name]?.batches ?? 0
        try sink.enqueue(job)
        waitUntil("blocking") { entered.value == released.value + 1 }
        try clock.advance(by: .seconds(1))
        released.add(1)
        // The stall is noted (and logged) before the batch is counted.
        waitUntil("handled") { runtime.snapshot()[stage: sink.name]?.batches == before + 1 }
    }
}

extension RuntimeTests {
    /// SedaLimits are the C core's: a name and a batch size at the limit are
    /// accepted by the core, one more is refused by both; the capacity a
    /// batch is checked against is the one the core rounded to (1 → 2).
    @Test func theLimitsAreTheCoresOwn() throws {
        let life = Life()
        let runtime = try Runtime()
        let longest = String(repeating: "n", count: SedaLimits.stageNameBytes)
        try runtime.addStage(longest, handler: DiscardJobs())
        try runtime.setBatchSize(SedaLimits.batchSize, forStage: longest)
        let stage = try runtime.sink(named: longest, of: Job.self).stage.pointer
        #expect(seda_stage_set_batch_max(stage, UInt32(SedaLimits.batchSize + 1)) == -EINVAL)
        #expect(throws: SedaError.invalidArgument) {
            try runtime.setBatchSize(SedaLimits.batchSize + 1, forStage: longest)
        }
        let tiny = try runtime.addStage("tiny", handler: DiscardJobs(), options: StageOptions(queueCapacity: 1))
        #expect(throws: SedaError.batchTooLarge(count: 3, capacity: 2)) {
            try tiny.enqueueMany((0..<3).map { Job($0, life) })
        }
        try runtime.shutdown()
        #expect(life.balanced)
    }
}
