import Seda
import Testing

@testable import SedaGnutella

/// A peer that stops reading: with a per-connection outgoing limit its
/// connection is closed and memory stays bounded; without one the bytes
/// for it pile up (the seed's server "would crash after a few hours").
@Suite("Clogged peer")
struct CloggedPeerTests {
    func run(_ options: InProcessNetwork.Options, pings: Int = 200) throws -> (Harness, GnutellaNode, Probe, Probe) {
        let h = try Harness(options: options)
        let a = try h.node("A", port: 6346)
        let sender = try h.probe("A"), clogged = try h.probe("A"), healthy = try h.probe("A")
        clogged.setReading(false)
        for _ in 0..<pings { sender.send(Descriptor(ttl: 7, .ping(extensions: []))) }
        _ = healthy.waitFor(pings)
        return (h, a, clogged, healthy)
    }

    @Test(arguments: [InProcessNetwork.ClogPolicy.close, .notify])
    func theClogIsClosedAndMemoryStaysBounded(policy: InProcessNetwork.ClogPolicy) throws {
        let (h, a, clogged, healthy) = try run(.init(hardLimit: 2048, clogPolicy: policy))
        waitUntil("the clogged connection closed") { a.statistics.snapshot().closed[.clogged] == 1 }
        #expect(h.network.bytesHeld <= 2048, "never more than the hard limit held for the peer")
        #expect(healthy.got.count == 200, "the healthy neighbour got every ping")
        #expect(a.neighbours.count == 2)
        clogged.setReading(true)
        waitUntil("the clogged peer sees the close") { clogged.sawEOF }
        #expect(clogged.got.count < 200, "it lost what it did not read")
        try h.shutdown()
    }

    @Test func withoutALimitTheBytesPileUp() throws {
        let (h, a, clogged, _) = try run(.init(hardLimit: nil))
        settle(h.runtime)
        #expect(h.network.bytesHeld == 200 * 23, "every ping for the clogged peer is still held")
        #expect(a.statistics.snapshot().closed.isEmpty || a.statistics.snapshot().closed.values.allSatisfy { $0 == 0 })
        clogged.setReading(true)
        #expect(clogged.waitFor(200).count == 200)
        #expect(h.network.bytesHeld == 0)
        try h.shutdown()
    }
}
