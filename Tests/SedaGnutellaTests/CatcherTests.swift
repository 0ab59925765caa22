import Seda
import Testing

@testable import SedaGnutella

/// The catcher (GnuCatcher): seeds, addresses learnt from pongs, the
/// connection target, discovery pings, redial delays.
@Suite("Catcher")
struct CatcherTests {
    @Test func dialsItsSeedsAndAddressesFromPongsUpToTheTarget() throws {
        let h = try Harness()
        try h.node("B", port: 6346)
        try h.node("C", port: 6346)
        let seeds = [h.addresses["B"]!]
        let a = try h.node("A", port: 6346) {
            $0.catcher = Catcher.Settings(targetConnections: 3, seeds: seeds, interval: .seconds(5))
        }
        try h.advance(.zero)  // the first check is due at once
        waitUntil("A dialled its seed") { a.neighbours.count == 1 && h.nodes["B"]!.neighbours.count == 1 }
        #expect(a.neighbours.all.map(\.remote) == seeds)

        // A probe tells A of C in a pong (answering nothing: the pong is
        // dropped, the address is kept).
        let p = try h.probe("A")
        p.send(Descriptor(.pong(Pong(port: h.addresses["C"]!.port, address: h.addresses["C"]!.host))))
        waitUntil("A learnt C") { a.catcher.hostCache == [h.addresses["C"]!] }
        try h.advance(.seconds(5))
        waitUntil("A dialled C") { a.neighbours.count == 3 && h.nodes["C"]!.neighbours.count == 1 }
        #expect(a.statistics.snapshot().connectedOut == 2)

        // At the target: the next check dials nothing.
        let dials = a.catcher.dials
        try h.advance(.seconds(5))
        settle(h.runtime)
        #expect(a.catcher.dials == dials)
        try h.shutdown()
    }

    @Test func shortOfPeersItPingsAndConsumesTheAnswers() throws {
        let h = try Harness()
        try h.node("B", port: 6346)
        let seeds = [h.addresses["B"]!]
        let a = try h.node("A", port: 6346) {
            $0.catcher = Catcher.Settings(targetConnections: 5, seeds: seeds, interval: .seconds(5), pingTTL: 3)
        }
        try h.advance(.zero)
        waitUntil("A dialled B") { a.neighbours.count == 1 }
        let atB = try h.probe("B")
        try h.advance(.seconds(5))  // short of 5, nothing to dial: ping
        let ping = atB.waitFor(1)[0]
        #expect(ping.type == .ping && ping.ttl == 2 && ping.hops == 1, "sent with TTL 3, one hop (B)")
        #expect(a.catcher.pings >= 1)
        atB.send(Descriptor(id: ping.id, .pong(Pong(port: 7000, address: IPv4Address(10, 9, 9, 9)))))
        waitUntil("A consumed the answer") { a.statistics.snapshot().dropped[.consumedLocally] == 1 }
        waitUntil("and learnt the address") {
            a.catcher.hostCache.contains(PeerAddress(host: IPv4Address(10, 9, 9, 9), port: 7000))
        }
        try h.shutdown()
    }

    @Test func aFailedAddressWaitsBeforeItIsDialledAgain() throws {
        let h = try Harness()
        let nowhere = PeerAddress(host: IPv4Address(10, 8, 8, 8), port: 1)
        let a = try h.node("A", port: 6346) {
            $0.catcher = Catcher.Settings(
                targetConnections: 1, seeds: [nowhere], interval: .seconds(5),
                redialAfter: .seconds(30))
        }
        try h.advance(.zero)
        waitUntil("the first dial failed") { a.statistics.snapshot().connectFailed == 1 }
        for _ in 0..<5 {
            try h.advance(.seconds(5))  // 25 s: too soon
            settle(h.runtime)
        }
        #expect(a.catcher.dials == 1)
        try h.advance(.seconds(5))  // 30 s
        waitUntil("dialled again") { a.statistics.snapshot().connectFailed == 2 }
        #expect(a.catcher.dials == 2)
        try h.shutdown()
    }
}
