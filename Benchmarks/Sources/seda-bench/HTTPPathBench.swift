import ArgumentParser
import CHTTPParser
import Glibc
import Seda
import SedaHTTP

/// `seda-bench http-path`: the user-space cost of one request on seda-httpd's
/// request path without sockets: parse, check, normalise the path, look the
/// page up in the cache, build the response head and hand the body over by
/// reference, in ns per request, beside two anchors: http_parser alone with
/// no callbacks (the parser's own cost) and a bare responder's work (find
/// the blank line with memmem, copy a prebuilt head).
struct HTTPPathBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-path",
        abstract: "ns per request of seda-httpd's parse + lookup + header-build path, beside its anchors.",
        discussion: """
            Requests: wrk's (a GET with Host only), a browser's (about 400 bytes of headers), and 16 \
            wrk requests pipelined in one packet. The built-in site's 8 KB page, answered from the \
            page cache; the output copies each head into a scratch buffer (as the socket layer's \
            write-copy does) and retains and releases the body (as a zero-copy write does). \
            Median of --runs runs of --requests requests, one thread.
            """
    )

    @Option(help: "Requests per run.")
    var requests: Int = 1_000_000

    @Option(help: "Runs per figure; the median is reported.")
    var runs: Int = 5

    @Option(parsing: .upToNextOption, help: "Requests to measure: wrk, browser, pipelined.")
    var cases: [String] = ["wrk", "browser", "pipelined"]

    func validate() throws {
        guard requests >= 1000, runs >= 1 else { throw ValidationError("--requests >= 1000, --runs >= 1") }
        for c in cases where !["wrk", "browser", "pipelined"].contains(c) {
            throw ValidationError("unknown case '\(c)' (wrk, browser, pipelined)")
        }
    }

    static let wrk = "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    static let browser = """
        GET /index.html HTTP/1.1\r
        Host: 127.0.0.1:8080\r
        Connection: keep-alive\r
        Cache-Control: max-age=0\r
        sec-ch-ua: "Chromium";v="120", "Not?A_Brand";v="8"\r
        sec-ch-ua-mobile: ?0\r
        Upgrade-Insecure-Requests: 1\r
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r
        Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r
        Accept-Encoding: gzip, deflate, br\r
        Accept-Language: en-GB,en;q=0.9\r
        \r

        """

    func run() throws {
        let runtime = try Runtime(cpuThreads: 1)
        defer { try? runtime.shutdown(.drain, timeout: .seconds(5)) }
        var configuration = HTTPServerConfiguration()
        configuration.limits.maxRequestsPerConnection = Int.max  // one keep-alive connection throughout
        let site = try HTTPSite.install(in: runtime, configuration: configuration)
        let reply = try runtime.addStage("http-reply", handler: Discard())
        let processor = HTTPRequestProcessor(site: site, replyTo: reply)
        print("seda-bench http-path: \(requests) requests per run, median of \(runs) runs, ns per request")

        var table = Table(headers: [
            "request", "bytes", "http_parser alone", "bare responder",
            "seda request path", "vs parser alone", "vs bare responder",
        ])
        let all = [
            ("wrk", "wrk GET", Self.wrk, 1), ("browser", "browser GET", Self.browser, 1),
            ("pipelined", "16 pipelined", String(repeating: Self.wrk, count: 16), 16),
        ]
        for (key, name, packet, perPacket) in all where cases.contains(key) {
            let bytes = Array(packet.utf8)
            let packets = max(requests / perPacket, 1)
            let n = Double(packets * perPacket)
            let parser = Stats.median((0..<runs).map { _ in timeNs { parserAlone(bytes, packets) } }) / n
            let bare = Stats.median((0..<runs).map { _ in timeNs { bareResponder(bytes, packets, perPacket) } }) / n
            let seda =
                Stats.median(
                    (0..<runs).map { _ in
                        timeNs { sedaPath(processor, bytes, packets, perPacket) }
                    }) / n
            table.add([
                name, "\(bytes.count / perPacket)", Stats.fixed(parser, 1), Stats.fixed(bare, 1),
                Stats.fixed(seda, 1), Stats.fixed(seda / parser, 2) + "×", Stats.fixed(seda / bare, 2) + "×",
            ])
        }
        print(table.render())
        let c = processor.counters.snapshot
        guard c.responses2xx == c.requests, c.requests > 0 else {
            throw ValidationError("the request path answered \(c.responses2xx) of \(c.requests) requests with 2xx")
        }
    }

    /// The request path: parse, check, normalise, cache lookup, head, body by reference.
    func sedaPath(_ processor: HTTPRequestProcessor, _ bytes: [UInt8], _ packets: Int, _ perPacket: Int) {
        var out = ScratchOutput()
        let session = HTTPSession(site: processor.site)
        bytes.withUnsafeBytes { packet in
            for _ in 0..<packets {
                let action = processor.received(packet, session: session, output: &out)
                precondition(action == .read, "unexpected \(action)")
            }
        }
        precondition(out.heads == packets * perPacket, "\(out.heads) heads for \(packets * perPacket) requests")
    }

    /// http_parser over the same bytes with no callbacks: its own cost.
    func parserAlone(_ bytes: [UInt8], _ packets: Int) {
        var settings = http_parser_settings()
        http_parser_settings_init(&settings)
        var parser = http_parser()
        http_parser_init(&parser, HTTP_REQUEST)
        var total = 0
        bytes.withUnsafeBytes { p in
            let base = p.baseAddress!.assumingMemoryBound(to: CChar.self)
            for _ in 0..<packets { total &+= http_parser_execute(&parser, &settings, base, p.count) }
        }
        precondition(total == bytes.count * packets && parser.http_errno == 0, "parser failed")
    }

    /// What the bare one-thread epoll responder does in user space per
    /// request: find the end of the header block (memchr for CR, then the
    /// four bytes; Glibc's module has no memmem), copy a prebuilt head.
    func bareResponder(_ bytes: [UInt8], _ packets: Int, _ perPacket: Int) {
        let head = Array(
            "HTTP/1.1 200 OK\r\nServer: bare\r\nContent-Length: 8192\r\nConnection: keep-alive\r\n\r\n".utf8)
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        var found = 0
        bytes.withUnsafeBytes { p in
            head.withUnsafeBytes { h in
                scratch.withUnsafeMutableBytes { s in
                    var at = 0
                    for _ in 0..<packets {
                        var off = 0
                        while off < p.count, let end = blankLine(p, from: off) {
                            off = end
                            if at + h.count > s.count { at = 0 }
                            (s.baseAddress! + at).copyMemory(from: h.baseAddress!, byteCount: h.count)
                            at += h.count
                            found += 1
                        }
                    }
                }
            }
        }
        precondition(found == packets * perPacket, "bare responder found \(found)")
    }
}

/// The offset just past the next "\r\n\r\n" in `p` from `from`, or nil.
@inline(__always)
func blankLine(_ p: UnsafeRawBufferPointer, from: Int) -> Int? {
    var off = from
    while off + 4 <= p.count, let cr = memchr(p.baseAddress! + off, 0x0D, p.count - off) {
        let i = UnsafeRawPointer(cr) - p.baseAddress!
        if i + 4 <= p.count && p[i + 1] == 0x0A && p[i + 2] == 0x0D && p[i + 3] == 0x0A { return i + 4 }
        off = i + 1
    }
    return nil
}

/// Heads copied into a reusable scratch buffer (the socket layer's
/// write-copy); bodies retained and released (a zero-copy write's hold).
struct ScratchOutput: HTTPResponseOutput {
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 64)
    var at = 0
    var heads = 0
    var bodyBytes = 0

    mutating func writeCopy(_ bytes: UnsafeRawBufferPointer) {
        if at + bytes.count > 1 << 16 { at = 0 }
        (scratch + at).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        at += bytes.count
        heads += 1
    }

    mutating func write(_ buffer: HTTPBuffer, offset: Int, count: Int) {
        let held = Unmanaged.passRetained(buffer)
        bodyBytes &+= count
        held.release()
    }

    mutating func sendFile(_ file: HTTPFileBody, offset: Int64, count: Int64) {
        bodyBytes &+= Int(count)
    }
}

/// A reply stage for a benchmark that never defers.
struct Discard: EventHandler {
    typealias Event = HTTPDeferredRequest
    func handle(_ batch: inout EventBatch<HTTPDeferredRequest>) throws {}
}

/// Wall time of `body` in nanoseconds.
func timeNs(_ body: () -> Void) -> Double {
    var a = timespec(), b = timespec()
    clock_gettime(CLOCK_MONOTONIC, &a)
    body()
    clock_gettime(CLOCK_MONOTONIC, &b)
    return Double(b.tv_sec - a.tv_sec) * 1e9 + Double(b.tv_nsec - a.tv_nsec)
}
