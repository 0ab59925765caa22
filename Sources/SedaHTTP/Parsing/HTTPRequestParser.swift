import CHTTPParser
import Glibc

/// What the parser does after handing over one request.
public enum HTTPParserAction: Sendable {
    /// Go on with the next request in the bytes at hand.
    case proceed
    /// Stop: keep the bytes not yet parsed until ``HTTPRequestParser/resume(_:)``
    /// (a response is pending elsewhere, so later responses must wait; the
    /// connection should stop reading meanwhile).
    case pause
    /// Stop for good: the connection closes after this response (the
    /// callback refused the request, e.g. a path that climbs above the root).
    case stop
}

/// Where the parser stands after ``HTTPRequestParser/feed(_:_:)`` or
/// ``HTTPRequestParser/resume(_:)``.
public enum HTTPParserStatus: Sendable, Equatable {
    /// Every byte was used; more are needed (mid-request or between requests:
    /// ``HTTPRequestParser/isInsideRequest`` tells which).
    case needMore
    /// The callback asked to pause; unparsed bytes are kept.
    case paused
    /// The last request was refused or ended the connection (no keep-alive):
    /// nothing more will be parsed; close after writing the responses.
    case finished
}

/// The per-connection request parser: http_parser 2.9.4 fed with byte chunks
/// as they arrive, a request split anywhere or several pipelined in one chunk.
///
/// Zero copy when it can: a request wholly inside the chunk being fed is
/// handed over as views into that chunk. Only a request split across chunks
/// (or the bytes left when the callback pauses) is copied into the parser's
/// own buffer, which starts at ``HTTPLimits/initialBufferBytes``, grows as
/// needed and is freed when the connection is back at a request boundary: an
/// idle keep-alive connection holds no buffer.
///
/// Requests are checked as they complete: limits (414, 431), method (405,
/// 501), a body where none is allowed (400; GET and HEAD have none and the
/// server reads no bodies), conflicting or invalid Content-Length /
/// Transfer-Encoding (400, from http_parser), Host on HTTP/1.1 (400),
/// malformed syntax and NUL bytes (400), version (505). A refused request
/// is handed over with its ``HTTPRequestHead/failure`` set, after the good
/// ones before it, and ends the parse.
///
/// Thread rules: one thread at a time (the connection's owner); not
/// reentrant (the callback must not feed the same parser).
public final class HTTPRequestParser {
    /// http_parser and the fields of the request in progress: allocated when
    /// bytes arrive, freed at a request boundary (an idle keep-alive
    /// connection holds none; issue 10 counts memory per idle connection).
    @exclusivity(unchecked) private var parseState: UnsafeMutablePointer<ParseState>? = nil
    /// The limits the parser applies.
    private let limits: Limits
    // The parser is confined to one thread, so Swift's dynamic exclusivity
    // checks (a runtime call and a thread-local access set, about a hundred
    // instructions per access) buy nothing on these fields: turned off.
    /// Bytes kept between calls: a partial request, or what a pause left.
    @exclusivity(unchecked) private var buffer: UnsafeMutableRawPointer? = nil
    @exclusivity(unchecked) private var bufferCapacity = 0
    @exclusivity(unchecked) private var bufferCount = 0
    /// How much of `buffer` http_parser has seen already.
    @exclusivity(unchecked) private var bufferParsed = 0
    @exclusivity(unchecked) private var paused = false
    @exclusivity(unchecked) private var finished = false
    /// Requests handed over so far on this connection.
    @exclusivity(unchecked) public private(set) var requestCount = 0

    /// A parser for one connection. `limits` should have passed
    /// ``HTTPLimits/validate()``.
    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = Limits(limits)
    }

    /// What the parser keeps of ``HTTPLimits`` (a connection's state stays
    /// small). The sizes ``HTTPLimits/validate()`` bounds by
    /// ``HTTPLimits/parserHeaderCeiling`` fit 32 bits.
    private struct Limits {
        let initialBufferBytes: Int32
        let maxHeaderBlockBytes: Int32
        let maxTarget: Int32
        let maxLine: Int32
        let maxLines: Int32
        let maxRequestsPerConnection: Int
        let maxPipelinedBytes: Int
        init(_ l: HTTPLimits) {
            initialBufferBytes = Int32(clamping: l.initialBufferBytes)
            maxHeaderBlockBytes = Int32(clamping: l.maxHeaderBlockBytes)
            maxTarget = Int32(clamping: l.maxRequestTargetBytes)
            maxLine = Int32(clamping: l.maxHeaderLineBytes)
            maxLines = Int32(clamping: l.maxHeaderCount)
            maxRequestsPerConnection = l.maxRequestsPerConnection
            maxPipelinedBytes = l.maxPipelinedBytes
        }
    }

    deinit {
        free(buffer)
        releaseState()
    }

    /// The parse state, made (a fresh http_parser at a request boundary)
    /// when there is none.
    @inline(__always)
    private var state: UnsafeMutablePointer<ParseState> {
        if let s = parseState { return s }
        return makeState()
    }

    private func makeState() -> UnsafeMutablePointer<ParseState> {
        let s = UnsafeMutablePointer<ParseState>.allocate(capacity: 1)
        s.initialize(to: ParseState())
        http_parser_init(&s.pointee.parser, HTTP_REQUEST)
        s.pointee.parser.data = UnsafeMutableRawPointer(s)
        s.pointee.maxTarget = Int(limits.maxTarget)
        s.pointee.maxLine = Int(limits.maxLine)
        s.pointee.maxLines = limits.maxLines
        parseState = s
        return s
    }

    /// Frees the parse state: at a request boundary (http_parser would
    /// start the next request from scratch anyway) or for good.
    private func releaseState() {
        guard let s = parseState else { return }
        s.deinitialize(count: 1)
        s.deallocate()
        parseState = nil
    }

    /// Whether bytes of an unfinished request have arrived: the header
    /// timeout applies (408 when it fires) rather than the keep-alive one
    /// (close silently).
    public var isInsideRequest: Bool { bufferCount > 0 && !paused }

    /// Whether the parser has stopped for good (see ``HTTPParserStatus/finished``).
    public var isFinished: Bool { finished }

    /// Whether the parser is paused (see ``HTTPParserAction/pause``).
    public var isPaused: Bool { paused }

    /// Whether the parser holds its parse state (http_parser and the
    /// request's fields): only while a request is partly read or bytes wait
    /// behind a pause. Tests check that an idle connection holds none.
    var holdsParseState: Bool { parseState != nil }

    /// Bytes held in the parser's buffer (0 when the last chunk ended on a
    /// request boundary).
    public var bufferedBytes: Int { bufferCount }

    /// Parses `bytes` (one received chunk), calling `onRequest` for each
    /// complete request in order. The views in the head are valid only
    /// during the call. While paused, the bytes are only kept (the caller
    /// should have stopped reading; past ``HTTPLimits/maxPipelinedBytes``
    /// the parser gives up: ``HTTPParserStatus/finished``); after
    /// ``HTTPParserStatus/finished`` they are ignored.
    @discardableResult
    public func feed(
        _ bytes: UnsafeRawBufferPointer,
        _ onRequest: (HTTPRequestHead) -> HTTPParserAction
    ) -> HTTPParserStatus {
        if finished { return .finished }
        guard bytes.count > 0, let start = bytes.baseAddress else {
            return paused ? .paused : .needMore
        }
        if bufferCount == 0 && !paused {
            return run(
                start.assumingMemoryBound(to: UInt8.self), from: 0, to: bytes.count,
                inBuffer: false, onRequest)
        }
        if paused && bufferCount + bytes.count > limits.maxPipelinedBytes {
            // The client goes on sending while a response is pending, and the
            // connection did not stop reading: give up on it (it closes after
            // the pending response).
            finish()
            return .finished
        }
        reserve(bufferCount + bytes.count)
        (buffer! + bufferCount).copyMemory(from: start, byteCount: bytes.count)
        bufferCount += bytes.count
        if paused { return .paused }
        return run(
            UnsafePointer(buffer!.assumingMemoryBound(to: UInt8.self)), from: bufferParsed,
            to: bufferCount, inBuffer: true, onRequest)
    }

    /// Leaves the paused state and parses the bytes kept meanwhile, calling
    /// `onRequest` as ``feed(_:_:)`` does.
    @discardableResult
    public func resume(_ onRequest: (HTTPRequestHead) -> HTTPParserAction) -> HTTPParserStatus {
        if finished { return .finished }
        paused = false
        if bufferCount == 0 { return .needMore }
        return run(
            UnsafePointer(buffer!.assumingMemoryBound(to: UInt8.self)), from: bufferParsed,
            to: bufferCount, inBuffer: true, onRequest)
    }

    /// Parses `base[from..<to]`; in the buffer, the request in progress starts at 0.
    private func run(
        _ base: UnsafePointer<UInt8>, from: Int, to end: Int, inBuffer: Bool,
        _ onRequest: (HTTPRequestHead) -> HTTPParserAction
    ) -> HTTPParserStatus {
        let s = state
        let settings = parserSettings
        var pos = from
        var requestStart = inBuffer ? 0 : from
        let cbase = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
        s.pointee.base = cbase
        while pos < end {
            let n = http_parser_execute(&s.pointee.parser, settings, cbase + pos, end - pos)
            pos += n
            if s.pointee.complete {
                http_parser_pause(&s.pointee.parser, 0)
                let head = makeHead(base, requestStart: requestStart, end: pos)
                requestCount += 1
                let action = onRequest(head)
                s.pointee.complete = false  // the fields are reset by on_message_begin
                if head.failure != nil || !head.keepAlive {
                    finish()
                    return .finished
                }
                if case .stop = action {
                    finish()
                    return .finished
                }
                requestStart = pos
                if case .pause = action {
                    paused = true
                    keep(base, from: pos, to: end, parsedUpTo: pos, inBuffer: inBuffer)
                    return .paused
                }
                continue
            }
            if s.pointee.parser.http_errno != HPE_OK.rawValue || n == 0 {
                refuse(failureStatus(base, requestStart: requestStart, end: end), onRequest)
                return .finished
            }
        }
        // Everything was parsed; the request in progress (if any) is incomplete.
        // Line breaks before a request are skipped by http_parser: drop them.
        while requestStart < end && (base[requestStart] == 0x0D || base[requestStart] == 0x0A) {
            requestStart += 1
        }
        if end - requestStart > Int(limits.maxHeaderBlockBytes) {
            // Still in the request line: its target is what is too long.
            refuse(s.pointee.headerLines == 0 ? .uriTooLong : .headerFieldsTooLarge, onRequest)
            return .finished
        }
        keep(base, from: requestStart, to: end, parsedUpTo: end, inBuffer: inBuffer)
        return .needMore
    }

    /// Hands over a refusal and stops parsing for good.
    private func refuse(_ status: HTTPStatus, _ onRequest: (HTTPRequestHead) -> HTTPParserAction) {
        let p = state.pointee.parser
        let head = HTTPRequestHead.refused(
            status,
            version: HTTPVersion(
                major: Int(p.http_major),
                minor: Int(p.http_minor)),
            sequence: requestCount)
        requestCount += 1
        _ = onRequest(head)
        finish()
    }

    /// Stops parsing for good (the connection is closing): later feeds
    /// are ignored and the buffer is freed.
    public func stop() { finish() }

    private func finish() {
        finished = true
        paused = false
        releaseState()
        free(buffer)
        buffer = nil
        bufferCapacity = 0
        bufferCount = 0
        bufferParsed = 0
    }

    /// Keeps `base[from..<to]` at the start of the buffer (the spans move with it).
    private func keep(_ base: UnsafePointer<UInt8>, from: Int, to end: Int, parsedUpTo: Int, inBuffer: Bool) {
        let n = end - from
        if n == 0 {
            bufferCount = 0
            bufferParsed = 0
            // An idle connection keeps no buffer and no parse state.
            free(buffer)
            buffer = nil
            bufferCapacity = 0
            releaseState()
            return
        }
        if inBuffer {
            if from > 0 { buffer!.copyMemory(from: buffer! + from, byteCount: n) }  // memmove semantics
        } else {
            reserve(n)
            buffer!.copyMemory(from: base + from, byteCount: n)
        }
        bufferCount = n
        bufferParsed = parsedUpTo - from
        state.pointee.rebase(by: from)
    }

    /// Makes room for `needed` bytes in the buffer, keeping its contents.
    private func reserve(_ needed: Int) {
        if needed <= bufferCapacity { return }
        var cap = max(bufferCapacity, Int(limits.initialBufferBytes))
        while cap < needed { cap *= 2 }
        guard let p = realloc(buffer, cap) else {
            fatalError("SedaHTTP: out of memory for a \(cap)-byte request buffer")
        }
        buffer = p
        bufferCapacity = cap
    }

    /// The head of the request that just completed at `base[requestStart..<end]`,
    /// checked.
    private func makeHead(_ base: UnsafePointer<UInt8>, requestStart: Int, end: Int) -> HTTPRequestHead {
        let s = UnsafePointer(state)  // read in place: the state is a few hundred bytes
        let raw = UnsafeRawPointer(base)
        let version = HTTPVersion(major: Int(s.pointee.parser.http_major), minor: Int(s.pointee.parser.http_minor))
        let method: HTTPMethod
        switch s.pointee.parser.method {
        case UInt32(HTTP_GET.rawValue): method = .get
        case UInt32(HTTP_HEAD.rawValue): method = .head
        default: method = .other
        }
        func refused(_ status: HTTPStatus) -> HTTPRequestHead {
            .refused(status, version: version, sequence: requestCount, method: method)
        }
        if end - requestStart > Int(limits.maxHeaderBlockBytes) { return refused(.headerFieldsTooLarge) }
        if method == .other { return refused(.methodNotAllowed) }
        if s.pointee.hasBody { return refused(.badRequest) }
        // Debian builds http_parser with HTTP_PARSER_STRICT=0: it takes any
        // letters for "HTTP", no version at all (HTTP/0.9) and a CR followed
        // by anything as a line end. Check those here.
        guard hasVersionToken(raw, after: s.pointee.url.start + max(s.pointee.url.count, 0), end: end),
            lineEndsAreCRLF(raw, from: requestStart, to: end)
        else { return refused(.badRequest) }
        if version.major != 1 { return refused(.versionNotSupported) }
        if s.pointee.hostLines > 1 || (s.pointee.hostLines == 0 && version.minor >= 1) { return refused(.badRequest) }
        let host = s.pointee.host.view(raw)
        if let host, !HostValidation.isValid(host) { return refused(.badRequest) }
        guard let target = s.pointee.url.view(raw), let form = RequestTarget.split(target) else {
            return refused(.badRequest)
        }
        let keepAlive =
            http_should_keep_alive(&state.pointee.parser) != 0
            && requestCount + 1 < limits.maxRequestsPerConnection
        return HTTPRequestHead(
            method: method, version: version, keepAlive: keepAlive, sequence: requestCount,
            failure: nil, target: target, path: form.path, query: form.query, host: host,
            ifModifiedSince: s.pointee.ifModifiedSince.view(raw), range: s.pointee.range.view(raw),
            ifRange: s.pointee.ifRange.view(raw))
    }

    /// Whether the request line goes on with " HTTP/" after the target.
    private func hasVersionToken(_ raw: UnsafeRawPointer, after urlEnd: Int, end: Int) -> Bool {
        var i = urlEnd
        while i < end && raw.load(fromByteOffset: i, as: UInt8.self) == 0x20 { i += 1 }
        guard i > urlEnd, i + 5 <= end else { return false }
        return memcmp(raw + i, "HTTP/", 5) == 0
    }

    /// Whether every CR in `raw[from..<to]` is followed by LF (a bare LF is
    /// a line end too, as RFC 9112 2.2 allows; a lone CR is not).
    private func lineEndsAreCRLF(_ raw: UnsafeRawPointer, from: Int, to end: Int) -> Bool {
        var p = raw + from
        let stop = raw + end
        while p < stop, let cr = memchr(p, 0x0D, stop - p) {
            let next = UnsafeRawPointer(cr) + 1
            if next >= stop || next.load(as: UInt8.self) != 0x0A { return false }
            p = next + 1
        }
        return true
    }

    /// The status for a parse error: the one a callback chose, 501 for a
    /// method-like token http_parser does not know, 431 for its own header
    /// limit, 400 otherwise.
    private func failureStatus(_ base: UnsafePointer<UInt8>, requestStart: Int, end: Int) -> HTTPStatus {
        switch state.pointee.failure {
        case 414: return .uriTooLong
        case 431: return .headerFieldsTooLarge
        case 400: return .badRequest
        default: break
        }
        switch state.pointee.parser.http_errno {
        case HPE_HEADER_OVERFLOW.rawValue:
            return .headerFieldsTooLarge
        case HPE_INVALID_METHOD.rawValue:
            // "FOO / HTTP/1.1" is an unknown method (501); "\0GET" is garbage (400).
            var i = requestStart
            while i < end && (base[i] == 0x0D || base[i] == 0x0A) { i += 1 }
            var n = 0
            while i < end && n <= 32 && isTokenByte(base[i]) {
                i += 1
                n += 1
            }
            return n > 0 && n <= 32 && (i == end || base[i] == 0x20) ? .notImplemented : .badRequest
        default:
            return .badRequest
        }
    }
}

/// RFC 9110 tchar.
@inline(__always)
func isTokenByte(_ c: UInt8) -> Bool {
    switch c {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
        UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
        UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default: return false
    }
}
