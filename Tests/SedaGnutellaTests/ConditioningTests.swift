import Glibc
import Seda
import Synchronization
import Testing

@testable import SedaGnutella

/// Holds the logger's thread inside its handler until opened.
final class LoggerGate: Sendable {
    let open = Atomic<Bool>(false)
    let entered = Atomic<Int>(0)

    var record: @Sendable (Descriptor) -> Void {
        { _ in
            self.entered.wrappingAdd(1, ordering: .relaxed)
            while !self.open.load(ordering: .acquiring) { usleep(200) }
        }
    }
}

/// Load conditioning on the router: which packets survive overload, and
/// why the route cleanup must be a control event.
@Suite("Load conditioning")
struct ConditioningTests {
    @Test func queriesAreShedWhenTheLoggerIsFullWhileOtherTypesFlow() throws {
        let h = try Harness()
        let gate = LoggerGate()
        let a = try h.node("A", port: 6346) {
            $0.queryRecord = gate.record
            $0.loggerQueueCapacity = 4
        }
        let p1 = try h.probe("A"), p2 = try h.probe("A")
        p1.send(Descriptor(ttl: 7, .query(Query(criteria: "first"))))
        waitUntil("the logger holds the first query") { gate.entered.load(ordering: .relaxed) == 1 }
        for i in 0..<9 { p1.send(Descriptor(ttl: 7, .query(Query(criteria: "q\(i)")))) }
        for _ in 0..<10 { p1.send(Descriptor(ttl: 7, .ping(extensions: []))) }
        let pings = p2.waitFor(10)
        #expect(pings.allSatisfy { $0.type == .ping }, "pings went through while every query waited")
        #expect(a.statistics.snapshot().dropped[.loggerRefused] == 5, "4 queued behind the first, 5 shed")
        gate.open.store(true, ordering: .releasing)
        _ = p2.waitFor(15)
        settle(h.runtime)
        #expect(p2.got.filter { $0.type == .query }.count == 5)
        try h.shutdown()
    }

    @Test func theQueryFilterRefusesOnlyQueries() throws {
        let runtime = try Runtime(cpuThreads: 1)
        let gate = LoggerGate()
        struct Held: EventHandler {
            let gate: LoggerGate
            func handle(_ batch: inout EventBatch<GnutellaEvent>) throws {
                gate.entered.wrappingAdd(1, ordering: .relaxed)
                while !gate.open.load(ordering: .acquiring) { usleep(200) }
            }
        }
        let sink = try runtime.addStage(
            "held", handler: Held(gate: gate), options: StageOptions(batchSize: 1),
            admission: RouterAdmission.queryFilter(2).controller())
        func query() -> Descriptor { Descriptor(.query(Query(criteria: "q"))) }
        try sink.enqueue(query())
        waitUntil("the handler holds one") { gate.entered.load(ordering: .relaxed) == 1 }
        try sink.enqueue(query())
        try sink.enqueue(Descriptor(.ping(extensions: [])))
        #expect(throws: SedaError.rejected(.queryFilter)) { try sink.enqueue(query()) }
        for _ in 0..<5 { try sink.enqueue(Descriptor(.pong(Pong(port: 1, address: .loopback)))) }
        try sink.enqueueControl(Tick(.routeCleanup))
        #expect(throws: SedaError.rejected(.queryFilter)) { try sink.enqueue(query()) }
        #expect(runtime.snapshot()[stage: "held"]?.queueLength == 8)
        gate.open.store(true, ordering: .releasing)
        try runtime.shutdown()
    }

    /// The seed's pitfall in miniature: the router's queue is held full by
    /// backpressure from a stuck logger and a threshold refuses what comes;
    /// a cleanup tick sent as an ordinary event is refused too, while the
    /// same tick as a control event gets through and the tables age.
    @Test(arguments: [CleanupDelivery.ordinary, .control])
    func cleanupTicksMustBeControlEvents(delivery: CleanupDelivery) throws {
        let h = try Harness()
        let gate = LoggerGate()
        let a = try h.node("A", port: 6346) {
            $0.queryRecord = gate.record
            $0.loggerQueueCapacity = 2  // the smallest queue the core makes
            $0.routerPausesWhenLoggerClogged = true
            $0.routerAdmission = .threshold(2)
            $0.cleanupDelivery = delivery
            $0.routing.routeLifetime = .seconds(2)
        }
        let p1 = try h.probe("A"), p2 = try h.probe("A")
        p1.send(Descriptor(ttl: 7, .query(Query(criteria: "stuck"))))
        waitUntil("the logger is stuck") { gate.entered.load(ordering: .relaxed) == 1 }
        // One at a time: the router's threshold must not see them together.
        for n in 1...2 {
            p1.send(Descriptor(ttl: 7, .query(Query(criteria: "queued \(n)"))))
            waitUntil("\(n) queued in the logger") {
                h.runtime.snapshot()[stage: a.loggerStage]?.queueLength == UInt64(n)
            }
        }
        p1.send(Descriptor(ttl: 7, .query(Query(criteria: "refused"))))
        waitUntil("the logger refused one") { a.statistics.snapshot().dropped[.loggerRefused] == 1 }
        p1.send(Descriptor(ttl: 7, .ping(extensions: [])))
        p1.send(Descriptor(ttl: 7, .ping(extensions: [])))
        waitUntil("two pings wait in the paused router") {
            h.runtime.snapshot()[stage: a.routerStage]?.queueLength == 2
        }
        p1.send(Descriptor(ttl: 7, .ping(extensions: [])))
        waitUntil("the threshold refused the third") { a.statistics.snapshot().dropped[.routerRefused] == 1 }

        try h.advance(.seconds(1))  // half the route lifetime: a cleanup tick
        switch delivery {
        case .ordinary:
            waitUntil("the tick refused") { a.statistics.snapshot().cleanupTicksDropped == 1 }
        case .control:
            waitUntil("the tick queued past the threshold") {
                h.runtime.snapshot()[stage: a.routerStage]?.queueLength == 3
            }
        }
        gate.open.store(true, ordering: .releasing)
        _ = p2.waitFor(5)  // 3 queries, 2 pings
        settle(h.runtime)
        #expect(a.router.rotations == (delivery == .control ? 1 : 0))
        #expect(a.statistics.snapshot().cleanupTicksDropped == (delivery == .control ? 0 : 1))
        try h.shutdown()
    }
}
