import Glibc
import Testing

@testable import Seda
@testable import SedaHTTP

/// Collects replies from the stages, for the test thread to complete.
final class ReplyCollector: EventHandler, @unchecked Sendable {
    typealias Event = HTTPDeferredRequest
    private let replies = Lock<[HTTPDeferredRequest]>([])

    func handle(_ batch: inout EventBatch<HTTPDeferredRequest>) throws {
        let taken = batch.takeAll()
        replies.withLock { $0.append(contentsOf: taken) }
    }

    /// The next reply, waiting up to 10 s.
    func next() -> HTTPDeferredRequest? {
        for _ in 0..<10_000 {
            if let r = replies.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return r }
            usleep(1000)
        }
        return nil
    }
}

/// A runtime with a site installed and one processor driven from the test thread.
final class Harness {
    let runtime: Runtime
    let site: HTTPSite
    let replies = ReplyCollector()
    let processor: HTTPRequestProcessor

    init(
        _ configuration: HTTPServerConfiguration = HTTPServerConfiguration(), clock: SedaClock = .monotonic,
        bottleneckAdmission: (any AdmissionController<HTTPDeferredRequest>)? = nil,
        fileAdmission: (any AdmissionController<HTTPDeferredRequest>)? = nil,
        dates: HTTPDateCache = HTTPDateCache()
    ) throws {
        runtime = try Runtime(cpuThreads: 1, clock: clock)
        site = try HTTPSite.install(
            in: runtime, configuration: configuration, fileAdmission: fileAdmission,
            bottleneckAdmission: bottleneckAdmission)
        let replySink = try runtime.addStage("http-reply", handler: replies)
        processor = HTTPRequestProcessor(site: site, replyTo: replySink, dates: dates)
    }

    deinit { try? runtime.shutdown(.drain, timeout: .seconds(10)) }

    /// Feeds each chunk, completing deferred requests as their replies come
    /// back, and returns the output and the last action.
    func exchange(_ chunks: [String], session: HTTPSession = HTTPSession()) -> (CollectingOutput, HTTPConnectionAction)
    {
        var out = CollectingOutput()
        var action = HTTPConnectionAction.read
        for chunk in chunks {
            action = Array(chunk.utf8).withUnsafeBytes { processor.received($0, session: session, output: &out) }
            while action == .waitForReply {
                guard let r = replies.next() else { return (out, action) }
                action = processor.completed(r, output: &out)
            }
        }
        return (out, action)
    }
}

func get(_ path: String, _ extra: String = "") -> String { "GET \(path) HTTP/1.1\r\nHost: t\r\n\(extra)\r\n" }

@Suite(.serialized) struct BuiltInSiteTests {
    @Test func servesTheEightKilobytePage() throws {
        let h = try Harness(dates: HTTPDateCache(now: { 784_111_777 }))
        let (out, action) = h.exchange([get("/") + get("/index.html") + "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"])
        #expect(action == .read)
        let r = try #require(responses(out.bytes, heads: [false, false, true]))
        #expect(r.map(\.status) == [200, 200, 200])
        #expect(r[0].body == DefaultSite.html)
        #expect(r[0].body.count == 8192)
        #expect(r[1].body == DefaultSite.html)
        #expect(r[2].body.isEmpty)
        #expect(r[2].header("Content-Length") == "8192")
        #expect(r[0].header("Content-Type") == "text/html")
        #expect(r[0].header("Date") == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(out.zeroCopyWrites == 2)  // the body by reference, never copied
        #expect(h.processor.counters.snapshot.servedFromCache == 3)
    }

    @Test func notFoundKeepsTheConnection() throws {
        let h = try Harness()
        let (out, action) = h.exchange([get("/nope") + get("/")])
        let r = try #require(responses(out.bytes))
        #expect(r.map(\.status) == [404, 200])
        #expect(r[0].header("Connection") == "keep-alive")
        #expect(action == .read)
    }

    @Test func connectionCloseAndHTTP10() throws {
        let h = try Harness()
        let (out, action) = h.exchange([get("/", "Connection: close\r\n") + get("/")])
        #expect(action == .close)
        #expect(responses(out.bytes)!.count == 1)
        #expect(responses(out.bytes)![0].header("Connection") == "close")
        let (out10, action10) = h.exchange(["GET / HTTP/1.0\r\n\r\n"])
        #expect(action10 == .close)
        #expect(responses(out10.bytes)![0].header("Connection") == "close")
        let (outKA, actionKA) = h.exchange(["GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"])
        #expect(actionKA == .read)
        #expect(responses(outKA.bytes)![0].header("Connection") == "keep-alive")
    }

    @Test func badInputIsAnsweredAndCloses() throws {
        let h = try Harness()
        let cases: [(String, Int)] = [
            ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", 405),
            ("GET /../etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n", 400),
            ("GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n", 400),
            ("GET /a%2fb HTTP/1.1\r\nHost: t\r\n\r\n", 400),
            ("GET /a%00b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
            ("GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: t\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\nHost: t\r\nX: " + String(repeating: "b", count: 9000) + "\r\n\r\n", 431),
        ]
        for (request, code) in cases {
            // A good request first: it is answered, then the bad one, then nothing.
            let (out, action) = h.exchange([get("/") + request + get("/")])
            let r = try #require(responses(out.bytes), "\(code)")
            #expect(r.map(\.status) == [200, code], "\(request.prefix(40))")
            #expect(r.last?.header("Connection") == "close")
            #expect(action == .close)
            if code == 405 { #expect(r.last?.header("Allow") == "GET, HEAD") }
        }
        #expect(h.processor.counters.snapshot.refused == UInt64(cases.count))
    }

    @Test func refusedHeadRequestsGetNoBody() throws {
        let h = try Harness()
        for bad in ["HEAD /../x HTTP/1.1\r\nHost: t\r\n\r\n", "HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n"] {
            let (out, action) = h.exchange([bad])
            let r = try #require(responses(out.bytes, heads: [true]))
            #expect(r.map(\.status) == [400])
            #expect(r[0].body.isEmpty)
            #expect(Int(r[0].header("Content-Length") ?? "") ?? 0 > 0)
            #expect(action == .close)
            // Nothing after the head: the whole output is one head.
            #expect(String(decoding: out.bytes, as: UTF8.self).hasSuffix("\r\n\r\n"))
        }
    }

    @Test func theBottleneckStageAnswersWithThePage() throws {
        var c = HTTPServerConfiguration()
        c.bottleneckWork = .microseconds(200)
        let h = try Harness(c)
        let (out, action) = h.exchange([get("/bottleneck") + get("/")])
        #expect(action == .read)
        let r = try #require(responses(out.bytes))
        #expect(r.map(\.status) == [200, 200])
        #expect(r[0].body == DefaultSite.html)
        #expect(h.runtime.snapshot()[stage: "http-bottleneck"]?.processed == 1)
    }

    @Test func refusedWorkIsShedWith503() throws {
        let h = try Harness(bottleneckAdmission: AdmissionPredicate { _, _ in .responseTime })
        let (out, action) = h.exchange([get("/bottleneck") + get("/")])
        #expect(action == .read)
        let r = try #require(responses(out.bytes))
        #expect(r.map(\.status) == [503, 200])
        #expect(r[0].header("Retry-After") == "1")
        #expect(h.processor.counters.snapshot.shed == 1)
        #expect(h.runtime.snapshot()[stage: "http-bottleneck"]?.rejectedByReason["responseTime"] == 1)
    }

    @Test func statusAndMetrics() throws {
        let h = try Harness()
        _ = h.exchange([get("/") + get("/nope")])
        let (out, _) = h.exchange([get("/status") + get("/metrics")])
        let r = try #require(responses(out.bytes))
        #expect(r.map(\.status) == [200, 200])
        let status = r[0].bodyText
        #expect(r[0].header("Content-Type") == "text/html; charset=utf-8")
        #expect(r[0].header("Cache-Control") == "no-store")
        for stage in ["http-file", "http-bottleneck", "http-status", "http-reply"] {
            #expect(status.contains(stage), "\(stage) missing from /status")
        }
        #expect(status.contains("queue wait p50 / p90 / p99"))
        if GraphvizRenderer().dotPath != nil {
            #expect(status.contains("<svg"))
        } else {
            #expect(status.contains("digraph seda"))
        }
        let metrics = r[1].bodyText
        #expect(r[1].header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(metrics.contains("seda_http_requests_total"))
        #expect(metrics.contains("seda_http_responses_total{class=\"4xx\"} 1"))
        #expect(metrics.contains("seda_stage_processed_total"))
        #expect(metrics.contains("http-status"))
    }

    @Test func theStatusPageShowsTheDOTWithoutGraphviz() {
        let page = StatusPage.html(
            snapshot: RuntimeSnapshot(takenAtNanoseconds: 0, stages: []), earlier: nil,
            counters: HTTPCounters.Snapshot(), cache: PageCache.Statistics(), graphSVG: nil,
            graphDOT: "digraph seda { \"a<b\" }")
        #expect(page.contains("digraph seda { &quot;a&lt;b&quot; }"))
        #expect(GraphvizRenderer(dotPath: "/nonexistent/dot").svg("digraph { a }") == nil)
    }

    @Test func slowAndIdleClients() throws {
        let h = try Harness()
        let session = HTTPSession()
        var out = CollectingOutput()
        #expect(session.timeout(h.site.configuration.limits) == .seconds(75))
        _ = Array("GET / HTTP/1.1\r\nHo".utf8).withUnsafeBytes {
            h.processor.received($0, session: session, output: &out)
        }
        #expect(session.timeout(h.site.configuration.limits) == .seconds(60))
        #expect(h.processor.timedOut(session, output: &out) == .close)
        let r = try #require(responses(out.bytes))
        #expect(r.map(\.status) == [408])
        // An idle keep-alive connection closes without a word.
        var quiet = CollectingOutput()
        #expect(h.processor.timedOut(HTTPSession(), output: &quiet) == .close)
        #expect(quiet.bytes.isEmpty)
        // A refused packet: 503 and close.
        var shed = CollectingOutput()
        #expect(h.processor.shed(HTTPSession(), output: &shed) == .close)
        #expect(responses(shed.bytes)?.first?.status == 503)
        #expect(h.processor.counters.snapshot.timedOut == 1)
    }
}

@Suite(.serialized) struct DocumentRootSiteTests {
    func site(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) -> (TempTree, HTTPServerConfiguration) {
        let t = TempTree()
        t.write("a.txt", "A")
        t.mkdir("dir")
        t.write("dir/index.html", "<dir>")
        t.write("big.bin", String(repeating: "0123456789", count: 1000))
        var c = HTTPServerConfiguration.forDirectory(t.path)
        c.maxCachedFileBytes = 4096
        configure(&c)
        return (t, c)
    }

    @Test func aMissGoesToTheFileStageThenHits() throws {
        let (tree, c) = site()
        let h = try Harness(c)
        let (out, _) = h.exchange([get("/a.txt")])
        #expect(responses(out.bytes)?.map(\.bodyText) == ["A"])
        #expect(h.processor.counters.snapshot.deferred == 1)
        let (again, action) = h.exchange([get("/a.txt")])
        #expect(action == .read)
        #expect(responses(again.bytes)?.map(\.bodyText) == ["A"])
        #expect(h.processor.counters.snapshot.deferred == 1)  // answered from the cache
        #expect(h.processor.counters.snapshot.servedFromCache == 1)
        _ = tree
    }

    @Test func pipelinedResponsesStayInOrderAroundAMiss() throws {
        let (tree, c) = site()
        let h = try Harness(c)
        _ = h.exchange([get("/a.txt")])  // cached now
        let (out, action) = h.exchange([get("/a.txt") + get("/dir/") + get("/a.txt") + get("/missing") + get("/a.txt")])
        #expect(action == .read)
        #expect(responses(out.bytes)?.map(\.status) == [200, 200, 200, 404, 200])
        #expect(responses(out.bytes)?.map(\.bodyText).prefix(3) == ["A", "<dir>", "A"])
        _ = tree
    }

    @Test func bytesArrivingWhileARequestIsAwayWaitTheirTurn() throws {
        let (tree, c) = site()
        let h = try Harness(c)
        let session = HTTPSession()
        var out = CollectingOutput()
        var action = Array(get("/dir/").utf8).withUnsafeBytes {
            h.processor.received($0, session: session, output: &out)
        }
        #expect(action == .waitForReply)
        #expect(session.timeout(c.limits) == nil)
        // The client pipelines more meanwhile (before reading stopped).
        action = Array((get("/a.txt") + "GET /a.t").utf8).withUnsafeBytes {
            h.processor.received($0, session: session, output: &out)
        }
        #expect(action == .waitForReply)
        #expect(out.bytes.isEmpty)
        while action == .waitForReply, let r = h.replies.next() { action = h.processor.completed(r, output: &out) }
        action = Array("xt HTTP/1.1\r\nHost: t\r\n\r\n".utf8).withUnsafeBytes {
            h.processor.received($0, session: session, output: &out)
        }
        while action == .waitForReply, let r = h.replies.next() { action = h.processor.completed(r, output: &out) }
        #expect(responses(out.bytes)?.map(\.bodyText) == ["<dir>", "A", "A"])
        _ = tree
    }

    @Test func directoriesRedirectToTheirSlash() throws {
        let (tree, c) = site()
        let h = try Harness(c)
        let (out, _) = h.exchange([get("/dir?x=1") + get("/dir")])
        let r = try #require(responses(out.bytes))
        #expect(r.map(\.status) == [301, 301])
        #expect(r[0].header("Location") == "/dir/?x=1")
        #expect(r[1].header("Location") == "/dir/")
        _ = tree
    }

    /// A redirect's Location is a path of this site, never a
    /// network-path reference ("//host/...", or "/\\host/..." which
    /// browsers read the same way) that would send the client elsewhere.
    @Test func redirectsStayOnTheSite() throws {
        let (tree, c) = site()
        let h = try Harness(c)
        let (out, _) = h.exchange([
            get("//evil.example/../dir") + get("///dir?q=1") + get("/\\evil.example/../dir") + get("/%64ir")
        ])
        let r = try #require(responses(out.bytes))
        #expect(r.map(\.status) == [301, 301, 301, 301])
        #expect(r.map { $0.header("Location") } == ["/dir/", "/dir/?q=1", "/dir/", "/dir/"])
        _ = tree
    }

    @Test func largeFilesAreSentWithSendfileNotCached() throws {
        let (tree, c) = site()
        let h = try Harness(c)
        let (out, _) = h.exchange([get("/big.bin") + get("/big.bin", "Range: bytes=9990-\r\n")])
        let r = try #require(responses(out.bytes))
        #expect(r.map(\.status) == [200, 206])
        #expect(r[0].body.count == 10_000)
        #expect(r[1].bodyText == "0123456789")
        #expect(out.fileWrites == 2)
        #expect(h.site.cache.statistics.entries == 0)
        _ = tree
    }

    @Test func conditionalAndRangeRequestsThroughTheServer() throws {
        let (tree, c) = site()
        let h = try Harness(c)
        _ = h.exchange([get("/a.txt")])
        guard case .hit(let page) = h.site.cache.lookup("/a.txt", now: h.runtime.clock.now) else {
            Issue.record("not cached")
            return
        }
        let lm = page.lastModified.string
        let (out, _) = h.exchange([
            get("/a.txt", "If-Modified-Since: \(lm)\r\n") + get("/a.txt", "Range: bytes=0-0\r\n")
                + get("/a.txt", "Range: bytes=5-\r\n")
        ])
        #expect(responses(out.bytes)?.map(\.status) == [304, 206, 416])
        _ = tree
    }

    @Test func changedFilesAreReadAgain() throws {
        let clock = SedaClock.manual()
        let (tree, c) = site { $0.revalidateAfter = .seconds(1) }
        let h = try Harness(c, clock: clock)
        _ = h.exchange([get("/a.txt")])
        guard case .hit(let first) = h.site.cache.lookup("/a.txt", now: clock.now) else {
            Issue.record("not cached")
            return
        }
        // Unchanged after the interval: checked once, the same page kept.
        try clock.advance(by: .seconds(2))
        let (same, _) = h.exchange([get("/a.txt")])
        #expect(responses(same.bytes)?.map(\.bodyText) == ["A"])
        #expect(h.site.cache.lookup("/a.txt", now: clock.now).page === first)
        #expect(h.site.cache.statistics.revalidations == 1)
        // Changed: read anew.
        tree.write("a.txt", "changed")
        try clock.advance(by: .seconds(2))
        let (fresh, _) = h.exchange([get("/a.txt")])
        #expect(responses(fresh.bytes)?.map(\.bodyText) == ["changed"])
        // Removed: 404, and the entry goes.
        unlink("\(tree.path)/a.txt")
        try clock.advance(by: .seconds(2))
        let (gone, _) = h.exchange([get("/a.txt")])
        #expect(responses(gone.bytes)?.map(\.status) == [404])
        #expect(h.site.cache.lookup("/a.txt", now: clock.now).page == nil)
    }

    @Test func aRefusedMissIs503() throws {
        let (tree, c) = site()
        let h = try Harness(c, fileAdmission: AdmissionPredicate { _, _ in .queueThreshold })
        let (out, action) = h.exchange([get("/a.txt")])
        #expect(responses(out.bytes)?.map(\.status) == [503])
        #expect(action == .read)
        _ = tree
    }

    @Test func endpointsAreOffForADirectory() throws {
        let (tree, c) = site()
        let h = try Harness(c)
        let (out, _) = h.exchange([get("/status") + get("/bottleneck")])
        #expect(responses(out.bytes)?.map(\.status) == [404, 404])
        #expect(h.site.bottleneckStage == nil)
        _ = tree
    }
}
