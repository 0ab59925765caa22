import Foundation
import Glibc
import SedaTestSupport
import Synchronization
import Testing

@testable import Seda
@testable import SedaHTTP

// MARK: - A server on 127.0.0.1, port 0

/// A runtime with an ``HTTPServer`` on an ephemeral port of 127.0.0.1.
final class TestServer {
    let runtime: Runtime
    let server: HTTPServer
    var port: UInt16 { server.port }

    init(
        poller: PollerBackend = .epoll, pipeline: HTTPPipeline = .fused, threads: Int = 2,
        clock: SedaClock = .monotonic,
        configure: (inout HTTPServerConfiguration, inout HTTPServerOptions) -> Void = { _, _ in }
    ) throws {
        runtime = try Runtime(cpuThreads: threads, clock: clock, poller: poller)
        var configuration = HTTPServerConfiguration()
        var options = HTTPServerOptions()
        options.port = 0
        options.pipeline = pipeline
        configure(&configuration, &options)
        server = try HTTPServer(runtime: runtime, configuration: configuration, options: options)
    }

    deinit {
        server.shutdown(gracePeriod: .seconds(5))
        try? runtime.shutdown(.drain, timeout: .seconds(10))
    }
}

/// Every backend and pipeline, for the tests cheap enough to run on all.
let everyWiring: [(PollerBackend, HTTPPipeline)] = [PollerBackend.select, .poll, .epoll, .ioUring].flatMap { p in
    HTTPPipeline.allCases.map { (p, $0) }
}

/// epoll and io_uring with both pipelines.
let mainWirings: [(PollerBackend, HTTPPipeline)] = [PollerBackend.epoll, .ioUring].flatMap { p in
    HTTPPipeline.allCases.map { (p, $0) }
}

// MARK: - A raw-socket client

/// A blocking TCP client of 127.0.0.1 whose receives time out after 10 s,
/// so a server that never answers fails the test instead of hanging it.
final class RawClient {
    let fd: Int32
    private(set) var received: [UInt8] = []
    private(set) var serverClosed = false

    init?(port: UInt16, receiveTimeout: Int = 10) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        // A failed init still runs deinit, which closes fd (closing it here
        // too could close another test's descriptor that reused the number).
        if connectLoopback(fd, port: port) != 0 { return nil }
        setReceiveTimeout(milliseconds: receiveTimeout * 1000)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { Glibc.close(fd) }

    func setReceiveTimeout(milliseconds: Int) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: Int((milliseconds % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends everything; false if the connection refused it.
    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }  // a signal (SIGCHLD), not the peer
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// One receive into ``received``; false on end of stream, a reset or the timeout.
    @discardableResult
    func receiveOnce() -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        var n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        while n < 0 && errno == EINTR {  // a signal (SIGCHLD), not the peer or the timeout
            n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        }
        if n > 0 {
            received.append(contentsOf: buf[0..<n])
            return true
        }
        // A reset counts as the server's close: closing with bytes of ours
        // unread (a client still trickling) makes the kernel send RST.
        if n == 0 || errno == ECONNRESET { serverClosed = true }
        return false
    }

    /// Receives until `count` complete responses arrived (`heads[i]`: the
    /// i-th answers a HEAD), the stream ends or a receive times out.
    func responses(_ count: Int, heads: [Bool] = []) -> [Response] {
        while true {
            if let r = SedaHTTPTests.responses(received, heads: heads), r.count >= count { return r }
            if !receiveOnce() { return SedaHTTPTests.responses(received, heads: heads) ?? [] }
        }
    }

    /// Receives until the server closes (true: end of stream, or a reset
    /// after it closed with our bytes unread) or a receive times out (false).
    func waitForEOF() -> Bool {
        while receiveOnce() {}
        return serverClosed
    }

    func forget() { received.removeAll() }
}

// MARK: - curl

/// Runs curl with `arguments`; nil when curl is not installed. Returns its
/// standard output.
func curl(_ arguments: [String]) throws -> String? {
    let path = ["/usr/bin/curl", "/usr/local/bin/curl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    guard let path else { return nil }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = ["--silent", "--show-error", "--max-time", "20", "--noproxy", "*"] + arguments
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

var curlIsInstalled: Bool {
    ["/usr/bin/curl", "/usr/local/bin/curl"].contains { FileManager.default.isExecutableFile(atPath: $0) }
}

// MARK: - A document root with a secret outside it

/// A temporary directory: `root/` (served) with a few files, a link that
/// points out of it, and `secret.txt` beside it (never to be served).
final class TestSite {
    let base: String
    var root: String { base + "/root" }
    static let secret = "the secret outside the root"
    let big: [UInt8]

    init() throws {
        var template = Array("/tmp/seda-httpd-e2e-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw SedaError.system(errno: errno) }
        base = String(cString: p)
        let fm = FileManager.default
        try fm.createDirectory(atPath: base + "/root/sub", withIntermediateDirectories: true)
        try Data(Self.secret.utf8).write(to: URL(fileURLWithPath: base + "/secret.txt"))
        try Data("alpha\n".utf8).write(to: URL(fileURLWithPath: base + "/root/a.txt"))
        try Data("bravo bravo\n".utf8).write(to: URL(fileURLWithPath: base + "/root/b.txt"))
        try Data("<p>sub</p>\n".utf8).write(to: URL(fileURLWithPath: base + "/root/sub/index.html"))
        big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        try Data(big).write(to: URL(fileURLWithPath: base + "/root/big.bin"))
        try fm.createSymbolicLink(atPath: base + "/root/out", withDestinationPath: "../secret.txt")
        try fm.createSymbolicLink(atPath: base + "/root/etc", withDestinationPath: "/etc")
    }

    deinit { try? FileManager.default.removeItem(atPath: base) }
}

// MARK: - Load shedding on demand

/// An admission controller the test opens and closes: while clogged it
/// refuses everything (an artificially clogged stage).
final class Valve<Event: AnyObject & Sendable>: AdmissionController, Sendable {
    let clogged = Atomic<Bool>(false)
    func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        clogged.load(ordering: .acquiring) ? .queueThreshold : nil
    }
}

/// Polls `condition` every millisecond for up to 10 s.
func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<10_000 {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

/// Raises the soft descriptor limit toward `wanted`; returns the limit now.
func raiseDescriptorLimit(to wanted: Int) -> Int {
    var l = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l) == 0 else { return 0 }
    if l.rlim_cur < rlim_t(wanted) {
        l.rlim_cur = min(l.rlim_max, rlim_t(wanted))
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
    }
    return Int(l.rlim_cur)
}

/// An integer another thread sets.
final class SharedInt: Sendable {
    let value = Atomic<Int>(-1)
}
