import Foundation
import Glibc
import Logging
import Synchronization
import Testing

@testable import Seda
@testable import SedaHTTP

/// seda-httpd's server end to end: real sockets on 127.0.0.1, curl and a
/// raw-socket client.
@Suite(.serialized) struct HTTPServerE2ETests {
    // MARK: HTTP/1.1 as clients speak it

    @Test(arguments: everyWiring)
    func keepAlivePipeliningAndHead(poller: PollerBackend, pipeline: HTTPPipeline) throws {
        let site = try TestSite()
        let t = try TestServer(poller: poller, pipeline: pipeline) { c, _ in
            c = .forDirectory(site.root)
        }
        let client = try #require(RawClient(port: t.port))
        // Three pipelined in one write: a miss (file stage), a hit, a HEAD; in order.
        client.send(get("/a.txt") + get("/b.txt") + "HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        let r = client.responses(3, heads: [false, false, true])
        #expect(r.map(\.status) == [200, 200, 200])
        #expect(r.first?.bodyText == "alpha\n")
        #expect(r.dropFirst().first?.bodyText == "bravo bravo\n")
        #expect(r.last?.header("Content-Length") == "6" && r.last?.body.isEmpty == true)
        #expect(r.first?.header("Content-Type")?.hasPrefix("text/plain") == true)
        // The same connection again (keep-alive), a request split in two writes.
        client.forget()
        client.send("GET /sub/ HTTP/1.1\r\nHo")
        usleep(2000)
        client.send("st: t\r\n\r\n")
        let again = client.responses(1)
        #expect(again.first?.status == 200)
        #expect(again.first?.bodyText == "<p>sub</p>\n")
        // Connection: close ends it after the response.
        client.forget()
        client.send(get("/a.txt", "Connection: close\r\n"))
        #expect(client.responses(1).first?.header("Connection") == "close")
        #expect(client.waitForEOF())
    }

    @Test(arguments: mainWirings)
    func largeFilesConditionalsAndRanges(poller: PollerBackend, pipeline: HTTPPipeline) throws {
        let site = try TestSite()
        let t = try TestServer(poller: poller, pipeline: pipeline) { c, _ in
            c = .forDirectory(site.root)
        }
        let client = try #require(RawClient(port: t.port))
        client.send(get("/big.bin"))  // above the cache's entry size: sendfile
        let big = client.responses(1)
        #expect(big.first?.status == 200)
        #expect(big.first?.body == site.big)
        let lastModified = try #require(big.first?.header("Last-Modified"))

        client.forget()
        client.send(get("/a.txt", "If-Modified-Since: \(lastModified)\r\n"))
        #expect(client.responses(1).first?.status == 304)
        client.forget()
        client.send(get("/big.bin", "Range: bytes=10-19\r\n"))
        let part = client.responses(1)
        #expect(part.first?.status == 206)
        #expect(part.first?.body == Array(site.big[10...19]))
        client.forget()
        client.send(get("/a.txt", "Range: bytes=1000-\r\n"))
        let unsatisfiable = client.responses(1)
        #expect(unsatisfiable.first?.status == 416)
        #expect(unsatisfiable.first?.header("Content-Range") == "bytes */6")
    }

    @Test func http10ClosesUnlessKeepAlive() throws {
        let t = try TestServer()
        let plain = try #require(RawClient(port: t.port))
        plain.send("GET / HTTP/1.0\r\n\r\n")
        #expect(plain.responses(1).first?.body.count == 8192)
        #expect(plain.waitForEOF())
        let kept = try #require(RawClient(port: t.port))
        kept.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(kept.responses(1).first?.status == 200)
        kept.forget()
        kept.send("GET /index.html HTTP/1.0\r\n\r\n")
        #expect(kept.responses(1).first?.body.count == 8192)
        #expect(kept.waitForEOF())
    }

    @Test(arguments: [PollerBackend.epoll, .ioUring])
    func curlSeesAWebServer(poller: PollerBackend) throws {
        guard curlIsInstalled else {
            print("curl is not installed (script/install-deps installs it): skipped")
            return
        }
        let site = try TestSite()
        let t = try TestServer(poller: poller) { c, _ in c = .forDirectory(site.root) }
        let base = "http://127.0.0.1:\(t.port)"
        // Two URLs in one run share the connection (keep-alive).
        let two = try curl([
            "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n",
            "\(base)/a.txt", "\(base)/b.txt",
        ])
        #expect(two?.split(separator: "\n") == ["200 1", "200 0"])
        #expect(try curl(["\(base)/b.txt"]) == "bravo bravo\n")
        #expect(try curl(["--http1.0", "\(base)/a.txt"]) == "alpha\n")
        #expect(try curl(["-I", "-o", "/dev/null", "-w", "%{http_code}", "\(base)/a.txt"]) == "200")
        #expect(try curl(["-r", "2-3", "\(base)/a.txt"]) == "ph")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-r", "50-", "\(base)/a.txt"]) == "416")
        let date = try #require(
            try curl(["-I", "\(base)/a.txt"])?.split(separator: "\r\n")
                .first { $0.lowercased().hasPrefix("last-modified:") }?.dropFirst(15))
        #expect(
            try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "If-Modified-Since: \(date)", "\(base)/a.txt"])
                == "304")
        let size = try curl(["-o", "/dev/null", "-w", "%{size_download}", "\(base)/big.bin"])
        #expect(size == "\(site.big.count)")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "\(base)/missing"]) == "404")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "\(base)/a.txt"]) == "405")
    }

    @Test func builtInSiteEndpoints() throws {
        let t = try TestServer { c, _ in c.bottleneckWork = .microseconds(200) }
        let client = try #require(RawClient(port: t.port))
        client.send(get("/") + get("/bottleneck") + get("/status") + get("/metrics"))
        let r = client.responses(4)
        #expect(r.map(\.status) == [200, 200, 200, 200])
        #expect(r.first?.body.count == 8192)
        #expect(r.dropFirst().first?.body.count == 8192)
        #expect(r.dropFirst(2).first?.bodyText.contains("http-read-0") == true)
        #expect(r.last?.bodyText.contains("seda_http_requests_total") == true)
    }

    // MARK: Bad input: the right status, the connection closed, nothing else affected

    @Test(arguments: HTTPPipeline.allCases)
    func badInputIsRefusedAndClosed(pipeline: HTTPPipeline) throws {
        let t = try TestServer(pipeline: pipeline)
        let longTarget = "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: t\r\n\r\n"
        let hugeHeader = "GET / HTTP/1.1\r\nHost: t\r\nX: " + String(repeating: "b", count: 40_000) + "\r\n\r\n"
        let cases: [(String, Set<Int>)] = [
            ("GARBAGE\r\n\r\n", [400]),
            ("GET / HTTP/1.1\r\nHost a\r\n\r\n", [400]),
            (longTarget, [414]),
            (hugeHeader, [431]),
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", [405, 501]),
            ("BREW / HTTP/1.1\r\nHost: t\r\n\r\n", [405, 501]),
            ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", [400]),
            ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", [400]),
            ("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", [400]),
            ("GET / HTTP/1.1\r\n\r\n", [400]),  // no Host
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", [400]),
            ("GET /a\u{0}b HTTP/1.1\r\nHost: t\r\n\r\n", [400]),
            ("GET / HTTP/1.1\r\nHost: t\u{0}\r\n\r\n", [400]),
        ]
        let bystander = try #require(RawClient(port: t.port))
        for (text, statuses) in cases {
            let client = try #require(RawClient(port: t.port))
            client.send(text + get("/"))  // what follows a refused request is never answered
            let r = client.responses(1)
            #expect(r.count == 1, "\(text.prefix(40).debugDescription): \(r.count) responses")
            #expect(r.first.map { statuses.contains($0.status) } == true, "\(text.prefix(40).debugDescription)")
            #expect(client.waitForEOF(), "\(text.prefix(40).debugDescription) left the connection open")
            // Nothing else is affected.
            bystander.forget()
            bystander.send(get("/"))
            #expect(bystander.responses(1).first?.status == 200)
        }
    }

    @Test(arguments: HTTPPipeline.allCases)
    func nothingEscapesTheRoot(pipeline: HTTPPipeline) throws {
        let site = try TestSite()
        let t = try TestServer(pipeline: pipeline) { c, _ in c = .forDirectory(site.root) }
        let attempts = [
            "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/sub/../../secret.txt",
            "/..%2fsecret.txt", "/sub%2f..%2f..%2fsecret.txt", "/out", "/etc/passwd", "/%2e%2e%2fsecret.txt",
            "/sub/%2e%2e/%2e%2e/secret.txt", "//../secret.txt", "/./../secret.txt",
        ]
        for path in attempts {
            let client = try #require(RawClient(port: t.port))
            client.send(get(path))
            let r = client.responses(1)
            #expect(r.count == 1, "\(path)")
            #expect(r.first.map { $0.status >= 400 } == true, "\(path) -> \(r.first?.status ?? 0)")
            #expect(r.first.map { !$0.bodyText.contains(TestSite.secret) && !$0.bodyText.contains("root:") } == true)
        }
        // Dot segments inside the root still resolve.
        let inside = try #require(RawClient(port: t.port))
        inside.send(get("/sub/../a.txt"))
        #expect(inside.responses(1).first?.bodyText == "alpha\n")
    }

    // MARK: Load shedding and limits

    @Test func a503WhenTheBottleneckStageIsClogged() throws {
        let valve = Valve<HTTPDeferredRequest>()
        let t = try TestServer { c, o in
            c.bottleneckWork = .microseconds(100)
            o.bottleneckAdmission = valve
        }
        let client = try #require(RawClient(port: t.port))
        client.send(get("/bottleneck"))
        #expect(client.responses(1).first?.status == 200)
        valve.clogged.store(true, ordering: .releasing)
        client.forget()
        client.send(get("/bottleneck") + get("/"))
        let r = client.responses(2)
        #expect(r.map(\.status) == [503, 200])  // shed fast; the connection carries on
        #expect(r.first?.header("Retry-After") == "1")
        #expect(t.server.counters.shed == 1)
    }

    @Test(arguments: [PollerBackend.epoll, .ioUring])
    func a503WhenTheParseStageRefuses(poller: PollerBackend) throws {
        let valve = Valve<HTTPPacket>()
        let t = try TestServer(poller: poller, pipeline: .staged) { _, o in o.parseAdmission = valve }
        let ok = try #require(RawClient(port: t.port))
        ok.send(get("/"))
        #expect(ok.responses(1).first?.status == 200)
        valve.clogged.store(true, ordering: .releasing)
        let shed = try #require(RawClient(port: t.port))
        shed.send(get("/"))
        let r = shed.responses(1)
        #expect(r.first?.status == 503)
        #expect(r.first?.header("Retry-After") != nil)
        #expect(shed.waitForEOF())
        #expect(t.server.counters.shed == 1)
        valve.clogged.store(false, ordering: .releasing)
        ok.forget()
        ok.send(get("/"))
        #expect(ok.responses(1).first?.status == 200)
    }

    @Test func acceptingPausesAtTheConnectionLimit() throws {
        let t = try TestServer(threads: 1) { _, o in o.maxConnections = 2 }
        let a = try #require(RawClient(port: t.port))
        let b = try #require(RawClient(port: t.port))
        for c in [a, b] {
            c.send(get("/"))
            #expect(c.responses(1).first?.status == 200)
        }
        // The third waits in the backlog: no answer while two are open.
        let third = try #require(RawClient(port: t.port))
        third.send(get("/"))
        third.setReceiveTimeout(milliseconds: 300)
        #expect(!third.receiveOnce() && !third.serverClosed)
        third.setReceiveTimeout(milliseconds: 10_000)
        a.send(get("/", "Connection: close\r\n"))
        #expect(a.responses(1).first?.status == 200)
        #expect(third.responses(1).first?.status == 200)
    }

    /// A client that ends its stream with a request half-sent, while a
    /// stage works on an earlier one, gets that earlier response and the
    /// close: the unfinished request can never complete, so the connection
    /// does not wait for the header timeout (and sends no 408).
    @Test(arguments: HTTPPipeline.allCases)
    func aHalfClosedClientsUnfinishedRequestEndsItsConnection(pipeline: HTTPPipeline) throws {
        let site = try TestSite()
        let clock = SedaClock.manual()  // no timeout fires unless the test moves time
        let t = try TestServer(pipeline: pipeline, threads: 1, clock: clock) { c, o in
            c = .forDirectory(site.root)
            o.maxConnections = 1
        }
        var first = RawClient(port: t.port)  // set to nil below: its close lets the second in
        try #require(first != nil)
        first?.send(get("/a.txt"))
        #expect(first?.responses(1).first?.status == 200)
        // The second waits in the backlog, so its request (a miss: the file
        // stage works on it), the start of another and its end of stream
        // are all there when the server reads it.
        let client = try #require(RawClient(port: t.port))
        client.send(get("/b.txt") + "GET /a.txt HTTP/1.1\r\nHo")
        shutdown(client.fd, Int32(SHUT_WR))
        first = nil
        #expect(client.responses(1).map(\.bodyText) == ["bravo bravo\n"])
        #expect(client.waitForEOF())
        #expect(t.server.counters.timedOut == 0)
    }

    // MARK: Timeouts

    @Test(arguments: mainWirings)
    func aSlowHeaderTimesOut(poller: PollerBackend, pipeline: HTTPPipeline) throws {
        let t = try TestServer(poller: poller, pipeline: pipeline) { c, _ in
            c.limits.headerTimeout = .milliseconds(300)
        }
        let client = try #require(RawClient(port: t.port))
        client.send("GET / HTTP/1.1\r\n")
        // A byte every 20 ms: never idle, never done (bounded at 500 bytes).
        client.setReceiveTimeout(milliseconds: 20)
        var sent = 0
        while sent < 500 && !client.serverClosed && client.received.isEmpty {
            if !client.send("X") { break }
            sent += 1
            client.receiveOnce()
        }
        client.setReceiveTimeout(milliseconds: 10_000)
        let r = client.responses(1)
        #expect(r.first?.status == 408)
        #expect(client.waitForEOF())
        #expect(t.server.counters.timedOut == 1)
    }

    /// The header deadline moves with each request, also when every packet
    /// ends inside the next request (steady pipelining): a client whose
    /// requests each arrive well within the timeout is never sent a 408.
    @Test(arguments: HTTPPipeline.allCases)
    func theHeaderDeadlineMovesWithEachPipelinedRequest(pipeline: HTTPPipeline) throws {
        let clock = SedaClock.manual()
        let t = try TestServer(pipeline: pipeline, clock: clock) { c, _ in
            c.limits.headerTimeout = .seconds(10)
            c.limits.keepAliveTimeout = .seconds(3600)
        }
        let client = try #require(RawClient(port: t.port))
        client.send(get("/") + "GET / HTTP/1.1\r\nHo")
        #expect(client.responses(1).map(\.status) == [200])
        // Each step: 6 s later, the request in progress completes and the
        // next one starts; 24 s in all, each request within 6 s.
        for step in 1...4 {
            client.forget()
            try clock.advance(by: .seconds(6))
            t.server.timers.poll()  // the timers due now reach the control stage first
            client.send("st: t\r\n\r\n" + "GET / HTTP/1.1\r\nHo")
            #expect(client.responses(1).map(\.status) == [200], "step \(step)")
        }
        #expect(t.server.counters.timedOut == 0)
        // The last request, never finished, still times out.
        client.forget()
        client.setReceiveTimeout(milliseconds: 10)
        for _ in 0..<2000 where !client.serverClosed {
            try clock.advance(by: .seconds(1))
            client.receiveOnce()
        }
        #expect(client.responses(1).map(\.status) == [408])
    }

    @Test func anIdleKeepAliveConnectionCloses() throws {
        // A manual clock: the 200 ms pass only when the test moves time (on
        // the real one, a client descheduled for 200 ms between its connect
        // and its request was closed before it asked).
        let clock = SedaClock.manual()
        let t = try TestServer(clock: clock) { c, _ in c.limits.keepAliveTimeout = .milliseconds(200) }
        let client = try #require(RawClient(port: t.port))
        client.send(get("/"))
        #expect(client.responses(1).first?.status == 200)
        client.forget()
        // Time passes in steps until the server closes (bounded: 20 s at
        // least, a 10 ms receive each step).
        client.setReceiveTimeout(milliseconds: 10)
        for _ in 0..<2000 where !client.serverClosed {
            try clock.advance(by: .milliseconds(100))
            client.receiveOnce()
        }
        #expect(client.serverClosed)  // silently, no 408
        #expect(client.received.isEmpty)
    }

    // MARK: Shutdown

    @Test(arguments: HTTPPipeline.allCases)
    func shutdownLetsRequestsInFlightComplete(pipeline: HTTPPipeline) throws {
        let t = try TestServer(pipeline: pipeline) { c, _ in
            c.bottleneckWork = .milliseconds(200)
            c.bottleneckThreads = 1
        }
        let idle = try #require(RawClient(port: t.port))
        idle.send(get("/"))
        #expect(idle.responses(1).first?.status == 200)
        let busy = try (0..<3).map { _ in try #require(RawClient(port: t.port)) }
        for c in busy { c.send(get("/bottleneck")) }
        #expect(eventually { t.server.counters.deferred == 3 })
        let left = SharedInt()
        let server = t.server
        let stopper = Thread { left.value.store(server.shutdown(gracePeriod: .seconds(20)), ordering: .releasing) }
        stopper.start()
        for c in busy {
            let r = c.responses(1)
            #expect(r.first?.status == 200)
            #expect(r.first?.body.count == 8192)
            #expect(c.waitForEOF())
        }
        #expect(idle.waitForEOF())
        #expect(eventually { left.value.load(ordering: .acquiring) == 0 })
        #expect(RawClient(port: t.port) == nil)  // no longer listening
    }

    // MARK: Many connections

    @Test(arguments: [PollerBackend.epoll, .ioUring])
    func aThousandConcurrentConnections(poller: PollerBackend) throws {
        let n = 1000
        let limit = raiseDescriptorLimit(to: 2 * n + 512)
        guard limit >= 2 * n + 256 else {
            print("descriptor limit \(limit) is below \(2 * n + 256): 1,000 connections skipped")
            return
        }
        let t = try TestServer(poller: poller) { _, o in o.backlog = 2048 }
        let statesBefore = connectionStatesAlive.count  // earlier tests' leftovers, if any
        var clients: [RawClient] = []
        for _ in 0..<n { clients.append(try #require(RawClient(port: t.port))) }
        for c in clients { c.send(get("/")) }
        var ok = 0
        for c in clients where c.responses(1).first?.body.count == 8192 { ok += 1 }
        #expect(ok == n)
        #expect(eventually { t.server.openConnections == n })
        clients.removeAll()
        #expect(eventually { t.server.openConnections == 0 })
        // Every connection's state went with it (no cycle kept one).
        #expect(eventually { connectionStatesAlive.count == statesBefore })
    }
}

// MARK: - The access log

/// Keeps every message logged through it.
struct CollectingLogHandler: LogHandler {
    let lines: Mutex<[String]>.Box
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.value.withLock { $0.append("\(event.level) \(event.message)") }
    }
}

extension Mutex {
    /// A mutex a closure may capture.
    final class Box: Sendable where Value: Sendable {
        let value: Mutex<Value>
        init(_ v: sending Value) { value = Mutex(v) }
    }
}

@Suite struct AccessLogTests {
    @Test func oneLinePerResponseWithItsRequest() throws {
        let lines = Mutex<[String]>.Box([])
        let log = Logger(label: "test.access") { _ in CollectingLogHandler(lines: lines) }
        let site = try TestSite()
        let t = try TestServer { c, o in
            c = .forDirectory(site.root)
            o.accessLog = log
        }
        let client = try #require(RawClient(port: t.port))
        client.send(get("/a.txt") + "HEAD /b.txt HTTP/1.1\r\nHost: t\r\n\r\n" + get("/missing"))
        #expect(client.responses(3, heads: [false, true, false]).map(\.status) == [200, 200, 404])
        #expect(eventually { lines.value.withLock { $0.count } == 3 })
        let got = lines.value.withLock { $0 }
        #expect(got.count == 3)
        #expect(got.first?.contains("\"GET /a.txt HTTP/1.1\" 200") == true)
        #expect(got.dropFirst().first?.contains("\"HEAD /b.txt HTTP/1.1\" 200") == true)
        #expect(got.last?.contains("\"GET /missing HTTP/1.1\" 404") == true)
        #expect(got.allSatisfy { $0.hasPrefix("info 127.0.0.1:") })
    }

    /// A body that happens to start like a status line is not a response
    /// head: it neither gets a line of its own nor takes the next
    /// response's request.
    @Test func aBodyLookingLikeAHeadIsNotLogged() throws {
        let lines = Mutex<[String]>.Box([])
        let log = Logger(label: "test.access") { _ in CollectingLogHandler(lines: lines) }
        let site = try TestSite()
        try Data("HTTP/1.1 299 Fake\r\n\r\n".utf8).write(to: URL(fileURLWithPath: site.root + "/trap.txt"))
        let t = try TestServer { c, o in
            c = .forDirectory(site.root)
            o.accessLog = log
        }
        let client = try #require(RawClient(port: t.port))
        // A miss, then the cached page (its body goes out by reference).
        client.send(get("/trap.txt"))
        #expect(client.responses(1).first?.status == 200)
        client.forget()
        client.send(get("/trap.txt") + get("/a.txt"))
        #expect(client.responses(2).map(\.status) == [200, 200])
        #expect(eventually { lines.value.withLock { $0.count } >= 3 })
        let got = lines.value.withLock { $0 }
        #expect(got.count == 3)
        #expect(got.filter { $0.contains("\"GET /trap.txt HTTP/1.1\" 200 OK") }.count == 2)
        #expect(got.last?.contains("\"GET /a.txt HTTP/1.1\" 200 OK") == true)
        #expect(!got.contains { $0.contains("299") })
    }
}
