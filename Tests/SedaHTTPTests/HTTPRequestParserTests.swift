import Testing

@testable import SedaHTTP

@Suite struct HTTPRequestParserTests {
    let get = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\n\r\n"

    @Test func parsesOneRequestWithViewsIntoThePacket() {
        let (seen, status, parser) = parse([get])
        #expect(status == .needMore)
        #expect(seen.count == 1)
        let r = seen[0]
        #expect(r.method == .get)
        #expect(r.version == .http11)
        #expect(r.keepAlive)
        #expect(r.failure == nil)
        #expect(r.target == "/index.html?x=1")
        #expect(r.path == "/index.html")
        #expect(r.query == "x=1")
        #expect(r.host == "example.com:8080")
        #expect(parser.bufferedBytes == 0)
        #expect(!parser.isInsideRequest)
    }

    @Test func aRequestSplitAnywhereParsesTheSame() {
        let whole = parse([get]).requests
        for chunks in splits(get) {
            let (seen, status, parser) = parse(chunks)
            #expect(seen == whole, "split \(chunks.map(\.utf8.count))")
            #expect(status == .needMore)
            #expect(parser.bufferedBytes == 0)
        }
    }

    @Test func headersOfInterestSurviveSplits() {
        let req =
            "GET /a HTTP/1.1\r\nhOsT: h\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT  \r\n"
            + "RANGE: bytes=0-9\r\nIf-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Long: "
            + String(repeating: "v", count: 300) + "\r\n\r\n"
        for chunks in splits(req) + [[req]] {
            let seen = parse(chunks).requests
            #expect(seen.count == 1)
            guard let r = seen.first else { continue }
            #expect(r.host == "h")
            #expect(r.ifModifiedSince == "Sun, 06 Nov 1994 08:49:37 GMT")
            #expect(r.range == "bytes=0-9")
            #expect(r.ifRange == "Sun, 06 Nov 1994 08:49:37 GMT")
        }
    }

    @Test func pipelinedRequestsInOneChunkComeInOrder() {
        let three =
            "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
        let (seen, status, _) = parse([three])
        #expect(status == .needMore)
        #expect(seen.map(\.path) == ["/1", "/2", "/3"])
        #expect(seen.map(\.method) == [.get, .head, .get])
        #expect(seen.map(\.sequence) == [0, 1, 2])
        // Split at every byte: the same three.
        for chunks in splits(three) {
            #expect(parse(chunks).requests.map(\.path) == ["/1", "/2", "/3"])
        }
    }

    @Test func pipelinedWithAPartialTail() {
        let a = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHo"
        let b = "st: a\r\n\r\n"
        let parser = HTTPRequestParser()
        var paths: [String] = []
        let s1 = a.utf8CString.withUnsafeBytes {
            parser.feed(UnsafeRawBufferPointer(rebasing: $0.dropLast())) {
                paths.append($0.pathString)
                return .proceed
            }
        }
        #expect(s1 == .needMore)
        #expect(paths == ["/1"])
        #expect(parser.isInsideRequest)
        #expect(parser.holdsParseState)
        #expect(parser.bufferedBytes == "GET /2 HTTP/1.1\r\nHo".utf8.count)
        let s2 = b.utf8CString.withUnsafeBytes {
            parser.feed(UnsafeRawBufferPointer(rebasing: $0.dropLast())) {
                paths.append($0.pathString)
                return .proceed
            }
        }
        #expect(s2 == .needMore)
        #expect(paths == ["/1", "/2"])
        #expect(parser.bufferedBytes == 0)
        #expect(!parser.isInsideRequest)
        #expect(!parser.holdsParseState)
    }

    @Test func anIdleConnectionHoldsNoParseStateAndTheNextRequestParses() {
        var limits = HTTPLimits()
        limits.maxRequestsPerConnection = 3
        let parser = HTTPRequestParser(limits: limits)
        #expect(!parser.holdsParseState)
        var seen: [(String, Int, Bool)] = []
        func feed(_ s: String) -> HTTPParserStatus {
            s.utf8CString.withUnsafeBytes {
                parser.feed(UnsafeRawBufferPointer(rebasing: $0.dropLast())) {
                    seen.append(($0.pathString, $0.sequence, $0.keepAlive))
                    return .proceed
                }
            }
        }
        // Each request whole in its packet, then idle: no state between them;
        // the request count (sequence, the per-connection limit) carries on.
        #expect(feed("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n") == .needMore)
        #expect(!parser.holdsParseState)
        #expect(feed("GET /2 HTTP/1.1\r\nHo") == .needMore)
        #expect(parser.holdsParseState)
        #expect(feed("st: a\r\n\r\n") == .needMore)
        #expect(!parser.holdsParseState)
        #expect(feed("GET /3 HTTP/1.1\r\nHost: a\r\n\r\n") == .finished)
        #expect(!parser.holdsParseState)
        #expect(seen.map(\.0) == ["/1", "/2", "/3"])
        #expect(seen.map(\.1) == [0, 1, 2])
        #expect(seen.map(\.2) == [true, true, false])
        // A bad request after an idle spell is still refused.
        let again = HTTPRequestParser()
        var failures: [HTTPStatus?] = []
        for packet in ["GET /ok HTTP/1.1\r\nHost: a\r\n\r\n", "GET /x HTTP/1.1\r\n\r\n"] {
            _ = packet.utf8CString.withUnsafeBytes {
                again.feed(UnsafeRawBufferPointer(rebasing: $0.dropLast())) {
                    failures.append($0.failure)
                    return .proceed
                }
            }
        }
        #expect(failures == [nil, .badRequest])
        #expect(!again.holdsParseState)
    }

    @Test func pauseKeepsTheRestUntilResume() {
        let three =
            "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
        let (seen, status, parser) = parse([three], pauseAfter: [0])
        #expect(status == .paused)
        #expect(seen.map(\.path) == ["/1"])
        #expect(parser.isPaused)
        #expect(!parser.isInsideRequest)
        // Bytes fed while paused are kept, not parsed.
        let more = Array("GET /4 HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        var later: [String] = []
        let s = more.withUnsafeBytes {
            parser.feed($0) {
                later.append($0.pathString)
                return .proceed
            }
        }
        #expect(s == .paused)
        #expect(later.isEmpty)
        let r = parser.resume {
            later.append($0.pathString)
            return .proceed
        }
        #expect(r == .needMore)
        #expect(later == ["/2", "/3", "/4"])
        #expect(parser.bufferedBytes == 0)
    }

    @Test func keepAliveRules() {
        #expect(parse(["GET / HTTP/1.1\r\nHost: a\r\n\r\n"]).requests[0].keepAlive)
        #expect(!parse(["GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"]).requests[0].keepAlive)
        #expect(!parse(["GET / HTTP/1.0\r\n\r\n"]).requests[0].keepAlive)
        #expect(parse(["GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"]).requests[0].keepAlive)
        #expect(!parse(["GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"]).requests[0].keepAlive)
    }

    @Test func connectionCloseEndsTheParse() {
        let two = "GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
        let (seen, status, parser) = parse([two])
        #expect(seen.map(\.path) == ["/1"])
        #expect(status == .finished)
        #expect(parser.isFinished)
        // Later bytes are ignored.
        let (_, again, _) = (
            0,
            "GET / HTTP/1.1\r\n\r\n".utf8CString.withUnsafeBytes {
                parser.feed(UnsafeRawBufferPointer(rebasing: $0.dropLast())) { _ in .proceed }
            }, 0
        )
        #expect(again == .finished)
    }

    @Test func maxRequestsPerConnection() {
        var limits = HTTPLimits()
        limits.maxRequestsPerConnection = 2
        let three =
            "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
        let (seen, status, _) = parse([three], limits: limits)
        #expect(seen.map(\.keepAlive) == [true, false])
        #expect(status == .finished)
    }

    @Test func headAndAbsoluteForm() {
        let r = parse(["HEAD http://Example.com:81/a/b?q HTTP/1.1\r\nHost: other\r\n\r\n"]).requests[0]
        #expect(r.method == .head)
        #expect(r.path == "/a/b")
        #expect(r.query == "q")
        let bare = parse(["GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n"]).requests[0]
        #expect(bare.failure == nil)
        #expect(bare.path == "/")
        #expect(parse(["GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n"]).requests[0].failure == 400)
    }

    // MARK: refusals

    func refusal(_ text: String, limits: HTTPLimits = HTTPLimits()) -> Int? {
        let (seen, status, _) = parse([text], limits: limits)
        #expect(status == .finished, "\(text.debugDescription) did not finish the parse")
        #expect(seen.last?.keepAlive == false)
        return seen.last?.failure
    }

    @Test func malformedRequestLineOrHeaderIs400() {
        #expect(refusal("GET /\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost a\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHo st: a\r\n\r\n") == 400)
        #expect(refusal("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n") == 400)
        #expect(refusal("\u{1}GET / HTTP/1.1\r\n\r\n") == 400)
        #expect(refusal("GET * HTTP/1.1\r\nHost: a\r\n\r\n") == 400)
        // What Debian's non-strict http_parser lets through.
        #expect(refusal("GET / HTTX/1.1\r\nHost: a\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\rHost: a\r\n\r\n") == 400)
        // Bare LF line ends are accepted (RFC 9112 2.2).
        #expect(parse(["GET / HTTP/1.1\nHost: a\n\n"]).requests.first?.failure == nil)
    }

    @Test func nulBytesAre400() {
        #expect(refusal("GET /a\u{0}b HTTP/1.1\r\nHost: a\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\u{0}\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nX\u{0}: a\r\nHost: a\r\n\r\n") == 400)
        #expect(refusal("\u{0}GET / HTTP/1.1\r\nHost: a\r\n\r\n") == 400)
    }

    @Test func unsupportedMethods() {
        #expect(refusal("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") == 405)
        #expect(refusal("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n") == 405)
        #expect(refusal("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") == 405)
        #expect(refusal("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n") == 405)
        #expect(refusal("FOO / HTTP/1.1\r\nHost: a\r\n\r\n") == 501)
        #expect(refusal("BREW / HTTP/1.1\r\nHost: a\r\n\r\n") == 501)
    }

    @Test func aBodyWhereNoneIsAllowed() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400)
        #expect(refusal("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello") == 405)
        // Content-Length: 0 is no body.
        #expect(parse(["GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"]).requests[0].failure == nil)
    }

    @Test func conflictingLengthsAre400() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n") == 400)
        #expect(refusal("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n") == 400)
    }

    @Test func hostRules() {
        #expect(refusal("GET / HTTP/1.1\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.0\r\nHost: a\\b\r\n\r\n") == 400)
        for good in ["a", "a:80", "[::1]:8080", "127.0.0.1", "xn--d1a.example", "a%41b", ""] {
            let r = parse(["GET / HTTP/1.1\r\nHost: \(good)\r\n\r\n"]).requests
            #expect(r.first?.failure == nil, "Host '\(good)'")
        }
        // HTTP/1.0 needs no Host.
        #expect(parse(["GET / HTTP/1.0\r\n\r\n"]).requests[0].failure == nil)
    }

    @Test func versions() {
        #expect(refusal("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == 505)
        #expect(refusal("GET / HTTP/0.9\r\nHost: a\r\n\r\n") == 505)
        #expect(parse(["GET / HTTP/1.2\r\nHost: a\r\n\r\n"]).requests[0].failure == nil)
    }

    @Test func obsoleteLineFoldingIs400() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n") == 400)
    }

    @Test func limits() {
        var l = HTTPLimits()
        l.maxRequestTargetBytes = 64
        l.maxHeaderLineBytes = 128
        l.maxHeaderBlockBytes = 1024
        l.maxHeaderCount = 10
        let longURI = "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\nHost: a\r\n\r\n"
        #expect(refusal(longURI, limits: l) == 414)
        let longLine = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 200) + "\r\n\r\n"
        #expect(refusal(longLine, limits: l) == 431)
        let longName = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "N", count: 200) + ": v\r\n\r\n"
        #expect(refusal(longName, limits: l) == 431)
        let many = "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<11).map { "X\($0): v\r\n" }.joined() + "\r\n"
        #expect(refusal(many, limits: l) == 431)
        let block =
            "GET / HTTP/1.1\r\nHost: a\r\n"
            + (0..<9).map { "X\($0): " + String(repeating: "c", count: 110) + "\r\n" }.joined() + "\r\n"
        #expect(refusal(block, limits: l) == 431)
        // Split into single bytes: the same statuses, and never more buffered than the limit.
        for (text, code) in [(longURI, 414), (longLine, 431), (block, 431)] {
            let (seen, status, parser) = parse(splits(text).last!, limits: l)
            #expect(seen.last?.failure == code)
            #expect(status == .finished)
            #expect(parser.bufferedBytes == 0)
        }
    }

    @Test func anIncompleteHeaderBlockOverTheLimitIsRefusedBeforeItEnds() {
        var l = HTTPLimits()
        l.maxHeaderBlockBytes = 1024
        l.maxHeaderLineBytes = 1024
        l.maxRequestTargetBytes = 1024
        let parser = HTTPRequestParser(limits: l)
        var failures: [Int?] = []
        let line = Array("X: \(String(repeating: "d", count: 90))\r\n".utf8)
        var status = HTTPParserStatus.needMore
        var fed = 0
        _ = Array("GET / HTTP/1.1\r\nHost: a\r\n".utf8).withUnsafeBytes { parser.feed($0) { _ in .proceed } }
        while status == .needMore && fed < 100 {
            status = line.withUnsafeBytes {
                parser.feed($0) {
                    failures.append($0.failure?.code)
                    return .proceed
                }
            }
            fed += 1
        }
        #expect(status == .finished)
        #expect(failures == [431])
        #expect(fed <= 12)
    }

    @Test func leadingLineBreaksBetweenRequestsAreSkipped() {
        let (seen, _, parser) = parse(["\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n"])
        #expect(seen.count == 1)
        #expect(!parser.isInsideRequest)
    }

    @Test func anIdleParserHoldsNoBuffer() {
        let (_, _, parser) = parse(["GET / HTTP/1.1\r\nHo", "st: a\r\n\r\n"])
        #expect(parser.bufferedBytes == 0)
        #expect(!parser.isInsideRequest)
    }

    @Test func upgradeRequestsAreServedAsPlainRequests() {
        let two =
            "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n"
        let seen = parse([two]).requests
        #expect(seen.map(\.path) == ["/ws", "/next"])
        #expect(seen.allSatisfy { $0.failure == nil })
    }
}

@Suite struct HTTPRequestParserBoundsTests {
    @Test func bytesPipelinedWhilePausedAreBounded() {
        var limits = HTTPLimits()
        limits.maxPipelinedBytes = 64 * 1024
        let parser = HTTPRequestParser(limits: limits)
        let one = Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        var seen = 0
        let first = one.withUnsafeBytes {
            parser.feed($0) { _ in
                seen += 1
                return .pause
            }
        }
        #expect(first == .paused)
        let flood = [UInt8](repeating: UInt8(ascii: "A"), count: 16 * 1024)
        var status = HTTPParserStatus.paused
        var fed = 0
        while status == .paused && fed < 100 {
            status = flood.withUnsafeBytes {
                parser.feed($0) { _ in
                    seen += 1
                    return .proceed
                }
            }
            fed += 1
        }
        #expect(status == .finished)
        #expect(fed <= 5)
        #expect(parser.bufferedBytes == 0)
        #expect(seen == 1)
    }

    @Test func aConnectionsParseStateIsSmall() {
        // The C parser and the spans a connection keeps between packets.
        #expect(MemoryLayout<ParseState>.size <= 160)
    }
}
