import Seda
import Testing

@testable import SedaGnutella

/// Every kind of bad input closes that connection and is counted; the
/// router's other connections carry on.
@Suite("Bad input")
struct BadInputTests {
    /// Node A with two healthy probes, and a bad one that has not shaken hands.
    func setUp(maxPayload: Int = 1024) throws -> (Harness, GnutellaNode, Probe, Probe, Probe) {
        let h = try Harness()
        let a = try h.node("A", port: 6346) { $0.server.maxPayload = maxPayload }
        let good1 = try h.probe("A"), good2 = try h.probe("A")
        let bad = try h.network.probe(connectingTo: h.addresses["A"]!)
        return (h, a, good1, good2, bad)
    }

    /// The healthy pair still routes, and only `reason` closed anything.
    func expectOthersUnaffected(
        _ h: Harness, _ a: GnutellaNode, _ good1: Probe, _ good2: Probe,
        closedFor reason: CloseReason, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let before = good2.got.count
        good1.send(Descriptor(ttl: 7, .ping(extensions: [])))
        _ = good2.waitFor(before + 1, sourceLocation: sourceLocation)
        let s = a.statistics.snapshot()
        #expect(s.closed.filter { $0.value > 0 } == [reason: 1], sourceLocation: sourceLocation)
        #expect(s.openConnections == 2, sourceLocation: sourceLocation)
        #expect(!good1.sawEOF && !good2.sawEOF, sourceLocation: sourceLocation)
        try h.shutdown()
    }

    @Test func garbageInsteadOfAHandshake() throws {
        let (h, a, g1, g2, bad) = try setUp()
        bad.send(Array("GET / HTTP/1.0\r\n\r\n".utf8))
        waitUntil("the garbage connection closed") { bad.sawEOF }
        #expect(bad.received.isEmpty, "no reply to garbage")
        try expectOthersUnaffected(h, a, g1, g2, closedFor: .badHandshake)
    }

    @Test func anUnknownPayloadType() throws {
        let (h, a, g1, g2, bad) = try setUp()
        var bye = Descriptor(ttl: 1, .ping(extensions: [])).bytes
        bye[16] = 0x02
        bad.send(GnutellaWire.connectRequest + Descriptor(.ping(extensions: [])).bytes + bye)
        waitUntil("closed") { bad.sawEOF }
        try expectOthersUnaffected(h, a, g1, g2, closedFor: .unknownPayloadType)
    }

    @Test func aPayloadLengthAboveTheMaximum() throws {
        let (h, a, g1, g2, bad) = try setUp(maxPayload: 1024)
        var header = Descriptor(.query(Query(criteria: "x"))).bytes
        header.removeLast(header.count - 23)
        header[19] = 0x01
        header[20] = 0x04
        header[21] = 0
        header[22] = 0  // 1025
        bad.send(GnutellaWire.connectRequest)
        bad.send(header)  // only the header: the refusal needs nothing more
        waitUntil("closed") { bad.sawEOF }
        try expectOthersUnaffected(h, a, g1, g2, closedFor: .payloadTooLong)
    }

    @Test func aTruncatedDescriptor() throws {
        let (h, a, g1, g2, bad) = try setUp()
        let pong = Descriptor(.pong(Pong(port: 1, address: .loopback))).bytes
        bad.send(GnutellaWire.connectRequest + Array(pong[0..<30]))
        bad.close()
        waitUntil("closed") { a.statistics.snapshot().closed[.truncated] == 1 }
        try expectOthersUnaffected(h, a, g1, g2, closedFor: .truncated)
    }

    @Test func aTruncatedHandshake() throws {
        let (h, a, g1, g2, bad) = try setUp()
        bad.send(Array("GNUTELLA CON".utf8))
        bad.close()
        waitUntil("closed") { a.statistics.snapshot().closed[.truncated] == 1 }
        try expectOthersUnaffected(h, a, g1, g2, closedFor: .truncated)
    }

    @Test func aSilentPeerIsClosedAfterTheHandshakeTimeout() throws {
        let h = try Harness()
        let a = try h.node("A", port: 6346) { $0.server.handshakeTimeout = .seconds(4) }
        let good1 = try h.probe("A"), good2 = try h.probe("A")
        let silent = try h.network.probe(connectingTo: h.addresses["A"]!)
        waitUntil("the silent connection is accepted") { a.server.sessionCount == 3 }
        try h.advance(.seconds(2))
        settle(h.runtime)
        #expect(!silent.sawEOF, "2 s of 4: still waiting")
        try h.advance(.seconds(2))
        waitUntil("the silent connection closed") { silent.sawEOF }
        try expectOthersUnaffected(h, a, good1, good2, closedFor: .handshakeTimeout)
    }

    @Test func ttlPlusHopsAboveSevenIsClampedAndTheConnectionStays() throws {
        let (h, a, g1, g2, _) = try setUp()
        g1.send(Descriptor(ttl: 10, hops: 3, .ping(extensions: [])))
        let d = g2.waitFor(1)[0]
        #expect(d.ttl == 3 && d.hops == 4, "clamped to 7 - 3 = 4, then one hop")
        let s = a.statistics.snapshot()
        #expect(s.ttlClamped == 1 && s.closed.values.reduce(0, +) == 0)
        try h.shutdown()
    }

    @Test func aMalformedPayloadIsDroppedAndTheConnectionStays() throws {
        let (h, a, g1, g2, _) = try setUp()
        g1.send(Descriptor(id: .random(), type: .query, ttl: 7, hops: 0, payload: [0, 0, 0x61]))  // no NUL
        g1.send(Descriptor(id: .random(), type: .pong, ttl: 7, hops: 0, payload: [1, 2, 3]))  // 3 of 14 bytes
        g1.send(Descriptor(ttl: 7, .query(Query(criteria: "fine"))))
        let d = g2.waitFor(1)
        settle(h.runtime)
        #expect(g2.got.count == 1 && d[0].type == .query)
        let s = a.statistics.snapshot()
        #expect(s.dropped[.malformed] == 2 && s.closed.values.reduce(0, +) == 0 && s.openConnections == 2)
        try h.shutdown()
    }
}
