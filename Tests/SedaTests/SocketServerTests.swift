import Glibc
import SedaTestSupport
import Synchronization
import Testing

@testable import Seda

// MARK: - Blocking clients for the tests (127.0.0.1 only, with timeouts)

/// A blocking TCP client with a 20 s receive timeout: a hang fails the test
/// rather than blocking the run. Calls interrupted by a signal (EINTR) are
/// retried.
final class TestClient {
    let fd: Int32

    init(port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0, "socket: \(errno)")
        let err = connectLoopback(fd, port: port)
        precondition(err == 0, "connect: \(err)")
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { Glibc.close(fd) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            precondition(n > 0, "send: \(errno)")
            off += n
        }
    }

    func receive(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            precondition(n > 0, "receive: \(n) (\(errno)) with \(count - got) bytes missing")
            got += n
        }
        return out
    }

    /// True when the server closed its side (a receive returns 0).
    func receivesEOF() -> Bool {
        var b: UInt8 = 0
        var n = recv(fd, &b, 1, 0)
        while n < 0 && errno == EINTR { n = recv(fd, &b, 1, 0) }
        return n == 0
    }

    func halfClose() { shutdown(fd, Int32(SHUT_WR)) }
}

// MARK: - Handlers

/// Echoes every packet without a copy (its own buffer goes back out) and
/// checks that it runs on the thread that owns the connection.
struct ZeroCopyEcho: IOHandler {
    let wrongThread: Counter
    let closed: Counter
    let runtime: Runtime

    func handle(_ batch: inout IOEventBatch) throws {
        for i in 0..<batch.count {
            guard let ev = batch[i] else { continue }
            if let c = ev.connection, c.thread != currentThread(runtime) { wrongThread.add(1) }
            switch ev.kind {
            case .packet:
                let c = ev.connection!
                try c.write(packet: batch.take(i)!)
            case .unwritable: ev.connection?.pauseReading()
            case .writable: ev.connection?.resumeReading()
            case .closed: closed.add(1)
            default: break
            }
        }
    }
}

/// The calling shared thread's index, -1 elsewhere.
func currentThread(_ runtime: Runtime) -> Int { runtime.currentThread ?? -1 }

@Suite("SocketServer")
struct SocketServerTests {
    static let backends: [PollerBackend] = [.select, .poll, .epoll, .ioUring]

    @Test(arguments: backends)
    func echoOnEveryBackend(poller: PollerBackend) throws {
        let runtime = try Runtime(cpuThreads: 2, poller: poller)
        #expect(runtime.poller == poller || (poller == .ioUring && runtime.poller == .epoll))
        let wrong = Counter()
        let closed = Counter()
        let server = try SocketServer(runtime: runtime, name: "echo") { _ in
            ZeroCopyEcho(wrongThread: wrong, closed: closed, runtime: runtime)
        }
        #expect(server.port != 0)
        let clients = (0..<4).map { _ in TestClient(port: server.port) }
        for round in 0..<100 {
            for (k, c) in clients.enumerated() {
                let msg = (0..<(1 + (round * 37 + k) % 1500)).map { UInt8(truncatingIfNeeded: $0 &+ round &+ k) }
                c.send(msg)
                #expect(c.receive(msg.count) == msg)
            }
        }
        for c in clients {
            c.halfClose()
            #expect(c.receivesEOF())  // READ_EOF handled: the server closed after its flush
        }
        waitUntil("every connection closed") { closed.value == clients.count }
        #expect(wrong.value == 0)
        let stats = (0..<2).map { runtime.ioStatistics(thread: $0) }
        #expect(stats.map(\.accepted).reduce(0, +) == 4)
        #expect(stats.map(\.connectionsOpen).reduce(0, +) == 0)
        server.close()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }

    @Test func manyClients() throws {
        let runtime = try Runtime(cpuThreads: 2)
        let closed = Counter()
        let server = try SocketServer(runtime: runtime, name: "echo") { _ in
            ZeroCopyEcho(wrongThread: Counter(), closed: closed, runtime: runtime)
        }
        let clients = (0..<200).map { _ in TestClient(port: server.port) }
        for round in 0..<10 {
            for (k, c) in clients.enumerated() { c.send([UInt8(truncatingIfNeeded: k), UInt8(round)]) }
            for (k, c) in clients.enumerated() {
                #expect(c.receive(2) == [UInt8(truncatingIfNeeded: k), UInt8(round)])
            }
        }
        let stats = (0..<2).map { runtime.ioStatistics(thread: $0) }
        #expect(stats[0].accepted > 0 && stats[1].accepted > 0)  // both threads serve
        #expect(stats.map(\.accepted).reduce(0, +) == 200)
        server.close()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }
}

// MARK: - Output limits

/// Writes `burst` bytes (copied) for every byte it receives, whatever the
/// watermarks say: a careless application facing a slow reader.
final class Flood: IOHandler, @unchecked Sendable {
    // @unchecked: one replica per thread, each called on its thread only;
    // tests read the atomics.
    let burst: [UInt8]
    let maxQueued = Atomic<Int>(0)
    let refused = Counter()
    let accepted = Counter()
    let clogged = Counter()
    let closedWith = Atomic<Int32>(1)

    init(burst: Int) { self.burst = [UInt8](repeating: 0x5a, count: burst) }

    func handle(_ batch: inout IOEventBatch) throws {
        batch.forEach { ev in
            switch ev.kind {
            case .packet:
                let c = ev.connection!
                for _ in 0..<ev.bytes.count {
                    do throws(SedaError) {
                        try c.write(burst)
                        accepted.add(1)
                    } catch .system(let e) where e == ENOBUFS {
                        refused.add(1)
                    } catch {
                        // closed by the hard limit
                    }
                    let q = c.queuedBytes
                    if q > maxQueued.load(ordering: .relaxed) { maxQueued.store(q, ordering: .relaxed) }
                }
            case .clogged: clogged.add(1)
            case .closed: closedWith.store(ev.errorCode, ordering: .releasing)
            default: break
            }
        }
    }
}

@Suite("Connection limits")
struct ConnectionLimitTests {
    @Test(arguments: SocketServerTests.backends)
    func slowReaderIsClosedAtTheHardLimit(poller: PollerBackend) throws {
        let runtime = try Runtime(cpuThreads: 2, poller: poller)
        let flood = Flood(burst: 256 * 1024)
        let options = ListenerOptions(connection: ConnectionOptions(hardLimit: 1 << 20))
        let server = try SocketServer(runtime: runtime, name: "flood", options: options) { _ in flood }
        let client = TestClient(port: server.port)
        var small: Int32 = 4096
        setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        for _ in 0..<200 where flood.closedWith.load(ordering: .acquiring) == 1 {
            if Glibc.send(client.fd, "r", 1, Int32(MSG_NOSIGNAL)) != 1 { break }
            usleep(1000)
        }
        waitUntil("the slow reader is closed") { flood.closedWith.load(ordering: .acquiring) != 1 }
        #expect(flood.closedWith.load(ordering: .acquiring) == -ENOBUFS)
        #expect(flood.maxQueued.load(ordering: .relaxed) <= 1 << 20)
        server.close()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }

    @Test func slowReaderIsToldItClogged() throws {
        let runtime = try Runtime(cpuThreads: 2)
        let flood = Flood(burst: 256 * 1024)
        let options = ListenerOptions(connection: ConnectionOptions(hardLimit: 1 << 20, clogPolicy: .notify))
        let server = try SocketServer(runtime: runtime, name: "flood", options: options) { _ in flood }
        let client = TestClient(port: server.port)
        var k = 0
        while flood.refused.value == 0 && k < 400 {
            client.send([0x72])
            k += 1
            waitUntil("request \(k) handled") { flood.accepted.value + flood.refused.value == k }
        }
        #expect(flood.refused.value >= 1)
        waitUntil("CLOGGED") { flood.clogged.value == 1 }
        #expect(flood.maxQueued.load(ordering: .relaxed) <= 1 << 20)
        #expect(flood.closedWith.load(ordering: .acquiring) == 1)  // still open
        _ = client.receive(flood.accepted.value * flood.burst.count)  // everything accepted arrives
        server.close()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }
}

// MARK: - State, zero copy, connecting

/// Owns a buffer written without a copy; counts its deinit.
final class Page: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    let freed: Counter
    init(_ text: String, freed: Counter) {
        bytes = .allocate(byteCount: text.utf8.count, alignment: 1)
        bytes.copyBytes(from: Array(text.utf8))
        self.freed = freed
    }
    deinit {
        bytes.deallocate()
        freed.add(1)
    }
}

/// Per-connection state: how many packets the connection sent.
final class Session: @unchecked Sendable {
    // @unchecked: touched only by the connection's own handler (its thread).
    var packets = 0
    let freed: Counter
    init(freed: Counter) { self.freed = freed }
    deinit { freed.add(1) }
}

struct Greeter: IOHandler {
    let pagesFreed: Counter
    let sessionsFreed: Counter

    func handle(_ batch: inout IOEventBatch) throws {
        try batch.forEach { ev throws in
            guard ev.kind == .packet, let c = ev.connection else { return }
            let session = (c.userState as? Session) ?? Session(freed: sessionsFreed)
            if c.userState == nil { c.userState = session }
            session.packets += 1
            let page = Page("packet \(session.packets)\n", freed: pagesFreed)
            try c.write(buffer: UnsafeRawBufferPointer(page.bytes), retaining: page)
        }
    }
}

/// Records what a client stage sees.
final class ClientSide: IOHandler, @unchecked Sendable {
    // @unchecked: a single stage with concurrency 1; tests read under the lock.
    let seen = Mutex<[IOEventKind]>([])
    let bytes = Mutex<[UInt8]>([])
    let connection = Mutex<ConnectionHandle?>(nil)
    let tag = Atomic<UInt64>(0)

    func handle(_ batch: inout IOEventBatch) throws {
        batch.forEach { ev in
            seen.withLock { $0.append(ev.kind) }
            switch ev.kind {
            case .connected:
                tag.store(ev.tag, ordering: .releasing)
                connection.withLock { $0 = ev.connection!.retained() }
            case .connectFailed: tag.store(ev.tag, ordering: .releasing)
            case .packet: bytes.withLock { $0.append(contentsOf: ev.bytes) }
            default: break
            }
        }
    }
}

/// Serves a file region between two copies on "f", then closes after the
/// flush; on "p" pauses reading (resumed from outside).
final class FileServer: IOHandler, @unchecked Sendable {
    // @unchecked: the fd never changes; the handle is set under a lock.
    let fd: Int32
    let size: UInt64
    let released = Counter()
    let paused = Mutex<ConnectionHandle?>(nil)
    let packets = Counter()

    init(fd: Int32, size: UInt64) {
        self.fd = fd
        self.size = size
    }

    final class Token: Sendable {
        let released: Counter
        init(_ c: Counter) { released = c }
        deinit { released.add(1) }
    }

    func handle(_ batch: inout IOEventBatch) throws {
        try batch.forEach { ev throws in
            guard ev.kind == .packet, let c = ev.connection else { return }
            packets.add(1)
            switch ev.bytes.first {
            case 0x66:  // "f"
                try c.write("<")
                try c.write(file: fd, offset: 10, count: size - 10, retaining: Token(released))
                try c.write(">")
                c.closeAfterFlush()
            case 0x70:  // "p"
                c.pauseReading()
                paused.withLock { $0 = c.retained() }
            default:
                try c.write(Array(ev.bytes))
            }
        }
    }
}

@Suite("Connection")
struct ConnectionTests {
    @Test func fileRegionsPauseAndCloseAfterFlush() throws {
        var name = Array("/tmp/seda-swift-file-XXXXXX".utf8CString)
        let fd = mkstemp(&name)
        #expect(fd >= 0)
        unlink(name)
        defer { Glibc.close(fd) }
        let content = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let runtime = try Runtime(cpuThreads: 2)
        let files = FileServer(fd: fd, size: UInt64(content.count))
        let server = try SocketServer(runtime: runtime, name: "files") { _ in files }

        let reader = TestClient(port: server.port)
        reader.send([0x66])
        let got = reader.receive(1 + content.count - 10 + 1)
        #expect(got.first == 0x3c && got.last == 0x3e)
        #expect(Array(got[1..<got.count - 1]) == Array(content[10...]))
        #expect(reader.receivesEOF())  // closed after the flush
        waitUntil("the file's owner released") { files.released.value == 1 }

        let paused = TestClient(port: server.port)
        paused.send([0x70])
        waitUntil("paused") { files.paused.withLock { $0 != nil } }
        paused.send([0x61, 0x62])
        usleep(50_000)
        #expect(files.packets.value == 2)  // "ab" is not read while paused
        files.paused.withLock { $0!.connection.resumeReading() }
        #expect(paused.receive(2) == [0x61, 0x62])
        files.paused.withLock { $0 = nil }
        server.close()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }

    @Test func userStateAndZeroCopyWrites() throws {
        let runtime = try Runtime(cpuThreads: 2)
        let pages = Counter()
        let sessions = Counter()
        let server = try SocketServer(runtime: runtime, name: "greet") { _ in
            Greeter(pagesFreed: pages, sessionsFreed: sessions)
        }
        let client = TestClient(port: server.port)
        for n in 1...5 {
            client.send([0x21])
            let line = "packet \(n)\n"
            #expect(client.receive(line.utf8.count) == Array(line.utf8))  // the session counts
        }
        waitUntil("every page released once sent") { pages.value == 5 }
        #expect(sessions.value == 0)
        client.halfClose()
        #expect(client.receivesEOF())
        waitUntil("the session released with its connection") { sessions.value == 1 }
        server.close()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }

    @Test(arguments: SocketServerTests.backends)
    func connectTalkAndFail(poller: PollerBackend) throws {
        let runtime = try Runtime(cpuThreads: 2, poller: poller)
        let server = try SocketServer(runtime: runtime, name: "echo") { _ in
            ZeroCopyEcho(wrongThread: Counter(), closed: Counter(), runtime: runtime)
        }
        let side = ClientSide()
        let stage = try runtime.addIOStage("client", replicas: .single) { _ in side }
        try runtime.connect(host: "127.0.0.1", port: server.port, stage: stage, tag: 7)
        waitUntil("connected") { side.connection.withLock { $0 != nil } }
        #expect(side.tag.load(ordering: .acquiring) == 7)
        let handle = side.connection.withLock { $0! }
        try handle.connection.write("hello from outside")  // posted to its thread
        waitUntil("the echo") { side.bytes.withLock { $0.count } == 18 }
        #expect(side.bytes.withLock { String(decoding: $0, as: UTF8.self) } == "hello from outside")
        handle.connection.close()
        waitUntil("closed") { side.seen.withLock { $0.contains(.closed) } }
        side.connection.withLock { $0 = nil }

        // Refused: nothing listens on a port just freed.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(fd, $0, len)
                _ = getsockname(fd, $0, &len)
            }
        }
        Glibc.close(fd)
        try runtime.connect(host: "127.0.0.1", port: UInt16(bigEndian: a.sin_port), stage: stage, tag: 9)
        waitUntil("refused") { side.seen.withLock { $0.contains(.connectFailed) } }
        #expect(side.tag.load(ordering: .acquiring) == 9)
        #expect(throws: SedaError.invalidArgument) {
            try runtime.connect(host: "not an address", port: 1, stage: stage)
        }
        server.close()
        try runtime.shutdown(.drain, timeout: .seconds(10))
    }
}
