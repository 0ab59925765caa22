import Seda
import Testing

@testable import SedaGnutella

/// Routing over small topologies of routers in one process, with probes
/// standing in for servents at the edges.
@Suite("Routing over a topology")
struct TopologyTests {
    /// pA — A — B — C — pC, with pB on B.
    func line() throws -> (Harness, Probe, Probe, Probe) {
        let h = try Harness()
        try h.node("A", port: 6346)
        try h.node("B", port: 6346)
        try h.node("C", port: 6346)
        h.link("A", "B")
        h.link("B", "C")
        return (h, try h.probe("A"), try h.probe("B"), try h.probe("C"))
    }

    @Test func pingsFloodAndPongsComeBackAlongTheirPath() throws {
        let (h, pA, pB, pC) = try line()
        let ping = Descriptor(id: GUID(low: 1, high: 1), ttl: 7, .ping(extensions: []))
        pA.send(ping)
        let atC = pC.waitFor(1)
        #expect(atC[0].id == ping.id && atC[0].type == .ping)
        #expect(atC[0].ttl == 4 && atC[0].hops == 3, "A, B and C each took one from TTL and added one hop")
        let atB = pB.waitFor(1)
        #expect(atB[0].ttl == 5 && atB[0].hops == 2)

        // Two servents answer; each pong goes back only towards pA.
        pC.send(Descriptor(id: ping.id, ttl: 7, .pong(Pong(port: 6346, address: IPv4Address(10, 9, 9, 9)))))
        pB.send(Descriptor(id: ping.id, ttl: 7, .pong(Pong(port: 6347, address: IPv4Address(10, 9, 9, 8)))))
        let back = pA.waitFor(2)
        #expect(Set(back.map(\.type)) == [.pong])
        #expect(back.map(\.hops).sorted() == [2, 3], "pB's pong crossed B and A; pC's crossed C, B and A")
        settle(h.runtime)
        #expect(pA.got.count == 2, "the ping never came back to its sender")
        #expect(pB.got.count == 1 && pC.got.count == 1, "pongs are not flooded")
        try h.shutdown()
    }

    @Test func queriesHitsAndPushesFollowTheirPaths() throws {
        let (h, pA, pB, pC) = try line()
        let query = Descriptor(ttl: 7, .query(Query(criteria: "seda")))
        pA.send(query)
        let atC = pC.waitFor(1)
        #expect(atC[0].type == .query && atC[0].id == query.id)
        if case .query(let q) = try atC[0].parsePayload() { #expect(q.criteriaText == "seda") }
        #expect(h.nodes.values.map { $0.statistics.snapshot().logged }.reduce(0, +) == 3, "each router's logger saw it")

        let servent = GUID(low: 0xc, high: 0xc)
        pC.send(
            Descriptor(
                id: query.id, ttl: 7,
                .queryHit(
                    QueryHit(
                        port: 6346, address: IPv4Address(10, 3, 3, 3), speed: 100,
                        results: [.init(fileIndex: 4, fileSize: 1000, name: "seda.pdf")], serventID: servent))))
        let hit = pA.waitFor(1)[0]
        #expect(hit.type == .queryHit && hit.id == query.id && hit.serventID == servent)

        // pA is firewalled out: it asks pC's servent to push the file.
        let push = Descriptor(
            ttl: 7, .push(Push(serventID: servent, fileIndex: 4, address: IPv4Address(10, 1, 1, 1), port: 6346)))
        pA.send(push)
        let pushed = pC.waitFor(2)[1]
        #expect(pushed.type == .push && pushed.id == push.id && pushed.hops == 3)
        settle(h.runtime)
        #expect(pB.got.map(\.type) == [.query], "neither the hit nor the push was flooded")
        try h.shutdown()
    }

    @Test func aDescriptorSeenTwiceIsForwardedOnce() throws {
        let h = try Harness()
        for n in ["A", "B", "C"] { try h.node(n, port: 6346) }
        h.link("A", "B")
        h.link("B", "C")
        h.link("A", "C")
        let pA = try h.probe("A"), pC = try h.probe("C")
        let ping = Descriptor(ttl: 7, .ping(extensions: []))
        pA.send(ping)
        pA.send(ping)  // the same descriptor again, on the same connection
        _ = pC.waitFor(1)
        settle(h.runtime)
        #expect(pC.got.count == 1, "C heard it from A and from B, forwarded it once")
        let dups = h.nodes.values.map { $0.statistics.snapshot().dropped[.duplicate] ?? 0 }.reduce(0, +)
        #expect(dups == 3, "A dropped the repeat; B and C each dropped the copy the other sent round the triangle")
        try h.shutdown()
    }

    @Test func nothingIsForwardedOnceTTLRunsOut() throws {
        let (h, pA, pB, pC) = try line()
        pA.send(Descriptor(ttl: 2, .ping(extensions: [])))  // A: 2→1, B: 1→0, stops at B
        pA.send(Descriptor(ttl: 3, .query(Query(criteria: "x"))))  // reaches B's neighbours with TTL 1, stops at C
        _ = pB.waitFor(1)
        settle(h.runtime)
        #expect(pB.got.map(\.type) == [.query] && pB.got[0].ttl == 1)
        #expect(pC.got.isEmpty)
        #expect(h.nodes["B"]!.statistics.snapshot().dropped[.ttlExpired] == 1)
        #expect(h.nodes["C"]!.statistics.snapshot().dropped[.ttlExpired] == 1)
        try h.shutdown()
    }

    @Test func routesExpireThroughTheRuntimesTimers() throws {
        let h = try Harness()
        let a = try h.node("A", port: 6346) { $0.routing.routeLifetime = .seconds(10) }
        let p1 = try h.probe("A"), p2 = try h.probe("A")
        let old = Descriptor(ttl: 7, .ping(extensions: []))
        p1.send(old)
        _ = p2.waitFor(1)

        try h.advance(.seconds(5))  // one half-lifetime: one rotation
        waitUntil("the first cleanup") { a.router.rotations == 1 }
        let young = Descriptor(ttl: 7, .ping(extensions: []))
        p1.send(young)
        _ = p2.waitFor(2)
        p2.send(Descriptor(id: old.id, .pong(Pong(port: 1, address: .loopback))))
        #expect(p1.waitFor(1)[0].id == old.id, "5 s old: still routed")

        try h.advance(.seconds(5))  // the old route expires, the young one ages
        waitUntil("the second cleanup") { a.router.rotations == 2 }
        p2.send(Descriptor(id: old.id, .pong(Pong(port: 1, address: .loopback))))
        p2.send(Descriptor(id: young.id, .pong(Pong(port: 1, address: .loopback))))
        let got = p1.waitFor(2)
        settle(h.runtime)
        #expect(p1.got.count == 2 && got[1].id == young.id, "only the young route still holds")
        #expect(a.statistics.snapshot().dropped[.noRoute] == 1)
        try h.shutdown()
    }
}

extension TopologyTests {
    @Test func withPriorityClassesEveryTypeStillRoutes() throws {
        let h = try Harness()
        try h.node("A", port: 6346) { $0.routerPriorityClasses = true }
        let p1 = try h.probe("A"), p2 = try h.probe("A")
        let q = Descriptor(ttl: 7, .query(Query(criteria: "class 1")))
        let ping = Descriptor(ttl: 7, .ping(extensions: []))
        p1.send(q)
        p1.send(ping)
        let got = p2.waitFor(2)
        #expect(Set(got.map(\.id)) == [q.id, ping.id])
        p2.send(
            Descriptor(
                id: q.id,
                .queryHit(
                    QueryHit(
                        port: 1, address: .loopback, speed: 1, results: [],
                        serventID: GUID(low: 3, high: 3)))))
        #expect(p1.waitFor(1)[0].type == .queryHit)
        try h.shutdown()
    }
}
