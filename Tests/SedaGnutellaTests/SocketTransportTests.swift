import Glibc
import Seda
import Testing

@testable import SedaGnutella

/// What the socket transport adds to the stages: the rest of the bad
/// inputs over real sockets, dial failures, GnuServer's replicas.
@Suite("Socket transport")
struct SocketTransportTests {
    typealias Node = SocketTests.Node

    /// Two handshaken clients that still route after the bad one is gone.
    func expectOthersRoute(
        _ n: Node, _ c1: TCPClient, _ c2: TCPClient, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let ping = Descriptor(ttl: 7, .ping(extensions: []))
        c1.send(ping.bytes)
        #expect(c2.descriptor()?.id == ping.id, "the others still route", sourceLocation: sourceLocation)
    }

    @Test func anUnknownPayloadTypeClosesThatConnection() throws {
        let n = try Node("A")
        let c1 = try TCPClient(port: n.transport.port), c2 = try TCPClient(port: n.transport.port)
        #expect(c1.handshake() && c2.handshake())
        let bad = try TCPClient(port: n.transport.port)
        #expect(bad.handshake())
        // The reply goes out just before the server adds the link: wait for
        // the adds, or c1's ping could be flooded before c2 is a neighbour.
        waitUntil("all three handshaken") { n.node.neighbours.count == 3 }
        var d = Descriptor(ttl: 1, .ping(extensions: [])).bytes
        d[16] = 0x02
        bad.send(d)
        #expect(bad.closedByPeer())
        expectOthersRoute(n, c1, c2)
        waitUntil("the close counted") { n.node.statistics.snapshot().closed[.unknownPayloadType] == 1 }
        #expect(n.node.statistics.snapshot().badInputCloses == 1)
        try n.stop()
    }

    @Test func endOfStreamInsideADescriptorIsTruncation() throws {
        let n = try Node("A")
        let c1 = try TCPClient(port: n.transport.port), c2 = try TCPClient(port: n.transport.port)
        #expect(c1.handshake() && c2.handshake())
        let bad = try TCPClient(port: n.transport.port)
        #expect(bad.handshake())
        // The reply goes out just before the server adds the link: wait for
        // the adds, or c1's ping could be flooded before c2 is a neighbour.
        waitUntil("all three handshaken") { n.node.neighbours.count == 3 }
        let q = Descriptor(ttl: 7, .query(Query(criteria: "cut short"))).bytes
        bad.send(Array(q[0..<30]))
        bad.shutdownWrite()
        #expect(bad.closedByPeer())
        expectOthersRoute(n, c1, c2)
        waitUntil("the close counted") { n.node.statistics.snapshot().closed[.truncated] == 1 }
        let s = n.node.statistics.snapshot()
        #expect(s.badInputCloses == 1 && s.receivedTotal == 1, "only the healthy ping was received")
        try n.stop()
    }

    @Test func aPeerThatSaysNothingIsClosedAtTheHandshakeTimeout() throws {
        let n = try Node("A") { $0.server.handshakeTimeout = .milliseconds(200) }
        let silent = try TCPClient(port: n.transport.port)
        waitUntil("the session opened") { n.node.statistics.snapshot().accepted == 1 }
        #expect(silent.closedByPeer())
        waitUntil("the close counted") { n.node.statistics.snapshot().closed[.handshakeTimeout] == 1 }
        // The session goes with the socket layer's CLOSED, which follows.
        waitUntil("the session gone") { n.node.server.sessionCount == 0 }
        try n.stop()
    }

    @Test func aFailedDialIsReportedToTheServer() throws {
        // A port nobody listens on: bound, never listening, and held until
        // the failure is in (a port closed at once could be taken by another
        // test's listener, or be the dial's own source port: a loopback
        // connect to itself succeeds).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = IPv4Address.loopback.value.bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, len) == 0 ? getsockname(fd, p, &len) : -1
            }
        }
        let deadPort = UInt16(bigEndian: a.sin_port)
        let n = try Node("A")
        n.transport.connect(to: PeerAddress(host: .loopback, port: deadPort))
        waitUntil("the failure reported") { n.node.statistics.snapshot().connectFailed == 1 }
        #expect(n.node.statistics.snapshot().connectedOut == 0 && n.node.server.sessionCount == 0)
        try n.stop()
    }

    @Test func gnuServerIsAnIOStagePerThreadThatServesItsConnections() throws {
        let n = try Node("A")
        #expect(n.node.serverSink == nil)
        #expect(n.transport.stage.isReplicated)
        // Enough connections that both threads own some (the kernel spreads
        // them over the SO_REUSEPORT sockets), each sending one ping.
        var clients: [TCPClient] = []
        for _ in 0..<16 {
            let c = try TCPClient(port: n.transport.port)
            #expect(c.handshake())
            clients.append(c)
        }
        waitUntil("all handshaken") { n.node.neighbours.count == 16 }
        for c in clients { c.send(Descriptor(ttl: 1, .ping(extensions: [])).bytes) }
        waitUntil("every ping received") { n.node.statistics.snapshot().receivedTotal == 16 }
        let snap = n.runtime.snapshot()
        let replicas = (0..<n.runtime.cpuThreads).compactMap { snap[stage: "A-GnuServer-\($0)"] }
        #expect(replicas.count == n.runtime.cpuThreads)
        #expect(snap[stage: "A-GnuServer"] == nil, "no stage of LinkEvents on sockets")
        #expect(replicas.map(\.processed).reduce(0, +) >= 16 + 16, "accepts and packets went through the replicas")
        try n.stop()
    }
}
