import Glibc
import Seda
import SedaTestSupport
import Testing

@testable import SedaGnutella

/// A blocking TCP client for the tests (127.0.0.1 only, 20 s timeouts as
/// a liveness guard).
final class TCPClient {
    let fd: Int32

    init(port: UInt16, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SedaError.system(errno: errno) }
        if var rcv = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, socklen_t(MemoryLayout<Int32>.size))
        }
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let err = connectLoopback(fd, port: port)
        guard err == 0 else { throw SedaError.system(errno: err) }  // deinit closes fd
    }

    deinit { close(fd) }

    /// Sends everything; false if the connection refused (closed or reset).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var at = 0
        while at < bytes.count {
            let k = bytes[at...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if k < 0 && errno == EINTR { continue }  // a signal, not the peer
            if k <= 0 { return false }
            at += k
        }
        return true
    }

    /// Reads exactly `n` bytes; fewer if the peer closed (or the guard timed out).
    func read(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var at = 0
        while at < n {
            let k = out[at...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if k < 0 && errno == EINTR { continue }  // a signal, not the peer or the guard
            if k <= 0 { break }
            at += k
        }
        return Array(out[0..<at])
    }

    /// Half-closes: the router reads end of stream.
    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Whether the peer has closed: a read sees end of stream or a reset.
    func closedByPeer() -> Bool {
        var b = [UInt8](repeating: 0, count: 65536)
        while true {
            let k = recv(fd, &b, b.count, 0)
            if k == 0 { return true }
            if k < 0 && errno == EINTR { continue }  // a signal, not the peer
            if k < 0 { return errno != EAGAIN && errno != EWOULDBLOCK }
        }
    }

    /// Shakes hands as the connecting side.
    func handshake() -> Bool {
        send(GnutellaWire.connectRequest) && read(GnutellaWire.connectReply.count) == GnutellaWire.connectReply
    }

    /// Reads one descriptor.
    func descriptor() -> Descriptor? {
        let h = read(GnutellaWire.headerSize)
        guard h.count == GnutellaWire.headerSize else { return nil }
        let len = Int(h[19]) | Int(h[20]) << 8 | Int(h[21]) << 16 | Int(h[22]) << 24
        let p = read(len)
        guard p.count == len else { return nil }
        return (h + p).withUnsafeBytes { Descriptor(copying: $0, origin: .local, receivedAt: 0) }
    }
}

/// The stages over real TCP sockets: GnuServer on Seda's socket layer
/// (``SocketTransport``), the tests' peers plain blocking sockets.
@Suite("Over TCP")
struct SocketTests {
    final class Node {
        let runtime: Runtime
        let timers: Timers
        let node: GnutellaNode
        var transport: SocketTransport { node.sockets! }

        init(
            _ name: String, options: SocketTransport.Options = .init(),
            configure: (inout GnutellaConfiguration) -> Void = { _ in }
        ) throws {
            runtime = try Runtime(cpuThreads: 2)
            timers = try Timers(clock: runtime.clock)
            var c = GnutellaConfiguration()
            c.stagePrefix = name + "-"
            c.transport = .sockets(options)
            configure(&c)
            node = try GnutellaNode(runtime: runtime, timers: timers, configuration: c)
            try node.start()
        }

        func stop() throws {
            node.stop()
            try runtime.shutdown(.handBack, timeout: .seconds(20))
        }
    }

    @Test func handshakeFloodAndReversePath() throws {
        let n = try Node("A")
        let c1 = try TCPClient(port: n.transport.port), c2 = try TCPClient(port: n.transport.port)
        #expect(c1.handshake() && c2.handshake())
        waitUntil("both handshaken") { n.node.neighbours.count == 2 }
        let ping = Descriptor(ttl: 7, .ping(extensions: []))
        c1.send(ping.bytes)
        let got = c2.descriptor()
        #expect(got?.id == ping.id && got?.ttl == 6 && got?.hops == 1)
        c2.send(Descriptor(id: ping.id, ttl: 7, .pong(Pong(port: 6346, address: .loopback))).bytes)
        let back = c1.descriptor()
        #expect(back?.type == .pong && back?.id == ping.id)
        try n.stop()
    }

    @Test func twoRoutersDialEachOtherAndRouteEveryType() throws {
        let a = try Node("A"), b = try Node("B")
        a.transport.connect(to: PeerAddress(host: .loopback, port: b.transport.port))
        waitUntil("A and B handshaken") { a.node.neighbours.count == 1 && b.node.neighbours.count == 1 }
        let ca = try TCPClient(port: a.transport.port), cb = try TCPClient(port: b.transport.port)
        #expect(ca.handshake() && cb.handshake())
        waitUntil("the clients handshaken") { a.node.neighbours.count == 2 && b.node.neighbours.count == 2 }
        // Every type across the two routers: ca — A — B — cb.
        let ping = Descriptor(ttl: 7, .ping(extensions: []))
        ca.send(ping.bytes)
        let heard = cb.descriptor()
        #expect(heard?.id == ping.id && heard?.hops == 2)
        cb.send(Descriptor(id: ping.id, .pong(Pong(port: 6346, address: .loopback))).bytes)
        let pong = ca.descriptor()
        #expect(pong?.type == .pong && pong?.id == ping.id)
        let query = Descriptor(ttl: 7, .query(Query(criteria: "over tcp")))
        ca.send(query.bytes)
        let got = cb.descriptor()
        #expect(got?.id == query.id && got?.hops == 2)
        let servent = GUID(low: 0xb, high: 0xb)
        let hit = QueryHit(
            port: 6346, address: .loopback, speed: 1,
            results: [.init(fileIndex: 7, fileSize: 70, name: "tcp.txt")], serventID: servent)
        cb.send(Descriptor(id: query.id, .queryHit(hit)).bytes)
        let back = ca.descriptor()
        #expect(back?.type == .queryHit && back?.serventID == servent)
        let push = Descriptor(ttl: 7, .push(Push(serventID: servent, fileIndex: 7, address: .loopback, port: 1)))
        ca.send(push.bytes)
        let pushed = cb.descriptor()
        #expect(pushed?.type == .push && pushed?.id == push.id)
        #expect(a.node.statistics.snapshot().connectedOut == 1)
        try a.stop()
        try b.stop()
    }

    @Test func garbageAndOversizeCloseTheirConnectionOnly() throws {
        let n = try Node("A") { $0.server.maxPayload = 1024 }
        let good1 = try TCPClient(port: n.transport.port), good2 = try TCPClient(port: n.transport.port)
        #expect(good1.handshake() && good2.handshake())
        let garbage = try TCPClient(port: n.transport.port)
        garbage.send(Array("GET / HTTP/1.0\r\n\r\n".utf8))
        #expect(garbage.closedByPeer())
        let big = try TCPClient(port: n.transport.port)
        #expect(big.handshake())
        var header = Descriptor(.ping(extensions: [])).bytes
        header[19] = 0x01
        header[20] = 0x04  // 1025 bytes announced
        big.send(header)
        #expect(big.closedByPeer())
        good1.send(Descriptor(ttl: 7, .ping(extensions: [])).bytes)
        #expect(good2.descriptor()?.type == .ping, "the others still route")
        waitUntil("both closes counted") { n.node.statistics.snapshot().badInputCloses == 2 }
        let s = n.node.statistics.snapshot()
        #expect(s.closed[.badHandshake] == 1 && s.closed[.payloadTooLong] == 1)
        try n.stop()
    }

    @Test(arguments: [ClogPolicy.close, .notify])
    func aPeerThatStopsReadingIsClosedAtTheLimit(policy: ClogPolicy) throws {
        let n = try Node("A", options: .init(hardLimit: 64 * 1024, clogPolicy: policy))
        let sender = try TCPClient(port: n.transport.port)
        let clogged = try TCPClient(port: n.transport.port, receiveBuffer: 4096)
        #expect(sender.handshake() && clogged.handshake())
        waitUntil("both handshaken") { n.node.neighbours.count == 2 }
        // 2 KB queries, 20 at a time, each lot taken by the router before
        // the next, until it gives up on the peer that never reads (bounded:
        // 4000 queries, 8 MB, far past the buffers).
        let text = String(repeating: "q", count: 2000)
        var sent = 0
        while sent < 4000 && n.node.statistics.snapshot().closed[.clogged] == 0 {
            for _ in 0..<20 { sender.send(Descriptor(ttl: 7, .query(Query(criteria: text))).bytes) }
            sent += 20
            waitUntil("the router took them") { n.node.statistics.snapshot().logged >= UInt64(sent) }
        }
        waitUntil("the clogged peer closed") { n.node.statistics.snapshot().closed[.clogged] == 1 }
        #expect(n.node.neighbours.count == 1)
        #expect(clogged.closedByPeer())
        try n.stop()
    }
}
