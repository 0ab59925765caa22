import Glibc
import Synchronization
import Testing

@_spi(Threads) @testable import Seda

/// An event that counts its deinitialisations, to prove the queue neither
/// leaks an event nor releases one twice.
final class Tracked: Sendable {
    let value: Int
    let deinits: Counter
    init(_ value: Int, _ deinits: Counter) {
        self.value = value
        self.deinits = deinits
    }
    deinit { deinits.add(1) }
}

final class Counter: Sendable {
    private let storage = Atomic<Int>(0)
    // Release on add, acquire on read: a test that sees a count also sees
    // what the counting thread wrote before it.
    func add(_ n: Int) { storage.add(n, ordering: .releasing) }
    var value: Int { storage.load(ordering: .acquiring) }
}

@Suite("EventQueue")
struct EventQueueTests {
    @Test func fifoFullAndEmpty() throws {
        let deinits = Counter()
        let q = try EventQueue<Tracked>(capacity: 3)
        #expect(q.capacity == 4)
        #expect(try q.dequeue() == nil)
        for i in 0..<4 { try q.enqueue(Tracked(i, deinits)) }
        #expect(q.count == 4)
        #expect(throws: SedaError.full) { try q.enqueue(Tracked(99, deinits)) }
        #expect(deinits.value == 1, "the rejected event was released once, by its caller")
        for i in 0..<4 { #expect(try q.dequeue()?.value == i) }
        #expect(try q.dequeue() == nil)
        #expect(deinits.value == 5)
    }

    @Test func invalidCapacity() {
        #expect(throws: SedaError.invalidArgument) { try EventQueue<Tracked>(capacity: 0) }
        #expect(throws: SedaError.invalidArgument) { try EventQueue<Tracked>(capacity: 1 << 31) }
    }

    @Test func batchIsAllOrNothing() throws {
        let deinits = Counter()
        let q = try EventQueue<Tracked>(capacity: 8)
        try q.enqueue(contentsOf: (0..<5).map { Tracked($0, deinits) })
        #expect(throws: SedaError.full) { try q.enqueue(contentsOf: (5..<9).map { Tracked($0, deinits) }) }
        #expect(deinits.value == 4, "a rejected batch goes back whole to the caller")
        #expect(q.count == 5)
        #expect(throws: SedaError.batchTooLarge(count: 9, capacity: 8)) {
            try q.enqueue(contentsOf: (0..<9).map { Tracked($0, deinits) })
        }
        let got = try q.dequeue(max: 16)
        #expect(got.map(\.value) == [0, 1, 2, 3, 4])
        var more: [Tracked] = []
        #expect(try q.dequeue(max: 4, into: &more) == 0)
        #expect(throws: SedaError.invalidArgument) { try q.dequeue(max: 0) }
    }

    @Test func closeDrainsThenThrows() throws {
        let deinits = Counter()
        let q = try EventQueue<Tracked>(capacity: 4)
        try q.enqueue(Tracked(1, deinits))
        #expect(q.close())
        #expect(!q.close())
        #expect(q.isClosed)
        #expect(throws: SedaError.closed) { try q.enqueue(Tracked(2, deinits)) }
        #expect(try q.dequeue()?.value == 1)
        #expect(throws: SedaError.closed) { try q.dequeue() }
        #expect(throws: SedaError.closed) { try q.dequeue(max: 4) }
        #expect(throws: SedaError.closed) { try q.dequeue(max: 4, timeout: .seconds(1)) }
        #expect(deinits.value == 2)
    }

    @Test func timedDequeue() throws {
        let q = try EventQueue<Tracked>(capacity: 4)
        #expect(throws: SedaError.timedOut) { try q.dequeue(max: 1, timeout: .milliseconds(2)) }
        try q.enqueue(Tracked(7, Counter()))
        #expect(try q.dequeue(max: 4, timeout: .zero).map(\.value) == [7])
    }

    @Test func deinitReleasesWhatIsLeft() throws {
        let deinits = Counter()
        do {
            let q = try EventQueue<Tracked>(capacity: 16)
            for i in 0..<10 { try q.enqueue(Tracked(i, deinits)) }
            _ = try q.dequeue()
            #expect(deinits.value == 1)
        }
        #expect(deinits.value == 10)
    }

    @Test func errorCodesRoundTrip() {
        for e in [SedaError.full, .closed, .invalidArgument, .timedOut, .outOfMemory, .system(errno: EROFS)] {
            #expect(SedaError(code: e.code) == e)
        }
        #expect("\(SedaError.system(errno: EROFS))".contains("\(EROFS)"))
    }

    /// Producers and consumers on real threads: every event arrives exactly
    /// once, each producer's events in order per consumer, and every event is
    /// deinitialised exactly once.
    @Test(arguments: [
        (producers: 4, consumers: 4, perProducer: 20_000), (producers: 3, consumers: 1, perProducer: 20_000),
    ])
    func concurrentProducersAndConsumers(producers: Int, consumers: Int, perProducer: Int) throws {
        let deinits = Counter()
        let created = Counter()
        let received = Counter()
        let q = try EventQueue<Tracked>(capacity: 64)
        // Each thread writes only its own box; the test reads them after
        // join, which orders the accesses (Synchronization.Mutex would hide
        // them from TSan: it parks with raw futex calls).
        let consumerLogs = (0..<consumers).map { _ in Box(ConsumerLog()) }
        let producerErrors = (0..<producers).map { _ in Box([String]()) }

        var threads: [SedaThread] = []
        for c in 0..<consumers {
            let log = consumerLogs[c]
            threads.append(
                startThread(name: "consumer-\(c)") {
                    var last = Array(repeating: -1, count: producers)
                    while true {
                        let batch: [Tracked]
                        do throws(SedaError) {
                            batch = try q.dequeue(max: 1 + c * 7, timeout: nil)
                        } catch .closed {
                            break
                        } catch {
                            log.value.failures.append("dequeue: \(error)")
                            break
                        }
                        for e in batch {
                            let p = e.value / perProducer
                            if e.value <= last[p] { log.value.failures.append("order: \(e.value) after \(last[p])") }
                            last[p] = e.value
                            log.value.received.append(e.value)
                        }
                        received.add(batch.count)
                    }
                })
        }
        var producerThreads: [SedaThread] = []
        for p in 0..<producers {
            let errors = producerErrors[p]
            producerThreads.append(
                startThread(name: "producer-\(p)") {
                    var i = 0
                    while i < perProducer {
                        let n = Swift.min(1 + (i % 5), perProducer - i)
                        let events = (i..<(i + n)).map { Tracked(p * perProducer + $0, deinits) }
                        created.add(n)
                        do throws(SedaError) {
                            if n == 1 { try q.enqueue(events[0]) } else { try q.enqueue(contentsOf: events) }
                            i += n
                        } catch .full {
                            sched_yield()
                        } catch {
                            errors.value.append("enqueue: \(error)")
                            return
                        }
                    }
                })
        }
        producerThreads.forEach { $0.join() }
        q.close()
        threads.forEach { $0.join() }

        let failures = consumerLogs.flatMap(\.value.failures) + producerErrors.flatMap(\.value)
        var seen = Array(repeating: 0, count: producers * perProducer)
        for log in consumerLogs { for v in log.value.received { seen[v] += 1 } }
        #expect(seen.allSatisfy { $0 == 1 }, "every event arrives exactly once")
        #expect(failures == [])
        #expect(received.value == producers * perProducer)
        // Every event made, accepted or rejected, was released exactly once.
        #expect(q.count == 0)
        #expect(deinits.value == created.value)
    }
}

struct ConsumerLog {
    var received: [Int] = []
    var failures: [String] = []
}

/// A value one thread writes and another reads after joining it.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
