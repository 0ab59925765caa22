import Glibc
import Seda

/// Haboob's request path for one worker, socket-free: received bytes in,
/// responses out. It parses (``HTTPRequestParser``), checks the path,
/// answers page-cache hits on the spot (the head copied with the Date
/// patched in, the body by reference) and hands everything else to a stage
/// (file read on a miss, `/bottleneck`, status) as an
/// ``HTTPDeferredRequest``; the reply comes back through
/// ``completed(_:output:)``. While a request is with a stage, later
/// pipelined requests wait in the parser, so responses leave in order.
///
/// Load shedding: when a stage refuses the work (its admission controller,
/// a full queue), the request is answered `503 Service Unavailable` with
/// `Retry-After` at once. ``shed(_:output:)`` does the same for a packet the
/// parse stage itself refused, and ``timedOut(_:output:)`` sends 408 to a
/// client too slow with its header.
///
/// Thread rules: one processor per worker (its stage replica), used only on
/// that worker's thread, for the connections that worker owns: the date
/// cache and the counters are single-threaded.
public final class HTTPRequestProcessor: @unchecked Sendable {
    // @unchecked: confined to its worker's thread (see the thread rules);
    // Sendable so that a replicated stage's handler can hold it.
    public let site: HTTPSite
    /// This processor's counters (the site sums them for the status page).
    public let counters = HTTPCounters()
    /// Where stages send deferred requests back (this worker's reply stage).
    public let replyTo: Sink<HTTPDeferredRequest>
    /// One thread only: no dynamic exclusivity check (see HTTPRequestParser).
    @exclusivity(unchecked) private var dates: HTTPDateCache
    private let endpoints: EndpointKeys
    /// The site's clock is the real monotonic one: read the coarse variant
    /// (a few milliseconds of resolution are plenty for revalidation).
    private let coarseClock: Bool
    /// Called with every request head the parser hands over (refused ones
    /// included), before it is answered, on this processor's thread: the
    /// socket wiring's access log. The head's views are valid only during
    /// the call. nil (the default) costs one check per request.
    @exclusivity(unchecked) public var requestObserver: ((HTTPSession, HTTPRequestHead) -> Void)?

    /// - Parameters:
    ///   - replyTo: the stage whose handler calls ``completed(_:output:)``
    ///     on this processor's thread.
    ///   - dates: the Date source (a fixed clock in tests).
    public init(site: HTTPSite, replyTo: Sink<HTTPDeferredRequest>, dates: HTTPDateCache = HTTPDateCache()) {
        self.site = site
        self.replyTo = replyTo
        self.dates = dates
        endpoints = EndpointKeys(site.configuration)
        coarseClock = site.clock === SedaClock.monotonic
        site.counters.register(counters)
    }

    /// Now on the site's clock (for the page cache's revalidation).
    @inline(__always)
    private var now: Int64 {
        if coarseClock {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
            return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
        }
        return site.clock.now
    }

    /// Feeds bytes received on `session`'s connection: writes the responses
    /// it can, in order, and tells what to do with the connection next.
    public func received<Output: HTTPResponseOutput>(
        _ bytes: UnsafeRawBufferPointer, session: HTTPSession,
        output: inout Output
    ) -> HTTPConnectionAction {
        let status = session.parser.feed(bytes) { head in handle(head, session, &output) }
        return next(status, session)
    }

    /// A deferred request came back from its stage: writes its response,
    /// then goes on with the requests that waited behind it. Call it on the
    /// thread that owns the request's connection (``HTTPDeferredRequest/session``'s
    /// ``HTTPSession/context`` finds it); if the connection closed meanwhile,
    /// drop the reply instead.
    public func completed<Output: HTTPResponseOutput>(
        _ request: HTTPDeferredRequest,
        output: inout Output
    ) -> HTTPConnectionAction {
        let session = request.session
        precondition(session.pending === request, "a reply for a request its session is not waiting for")
        session.pending = nil
        if !respond(request, &output) { session.parser.stop() }
        if session.parser.isFinished { return .close }
        let status = session.parser.resume { head in handle(head, session, &output) }
        return next(status, session)
    }

    /// The parse stage refused a packet of this connection (load shedding):
    /// answers 503 with Retry-After and closes, since the refused bytes are lost.
    public func shed<Output: HTTPResponseOutput>(_ session: HTTPSession, output: inout Output) -> HTTPConnectionAction {
        counters.bump(counters.shed)
        let s = HTTPResponseWriter.writeError(
            .serviceUnavailable, keepAlive: false, date: dates.current(),
            extra: .retryAfter(seconds: site.configuration.retryAfterSeconds),
            to: &output)
        counters.count(s)
        return .close
    }

    /// The connection's timeout (``HTTPSession/timeout(_:)``) fired: a
    /// request half-sent gets 408; an idle keep-alive connection just
    /// closes; while a stage works on a request nothing happens (re-arm).
    public func timedOut<Output: HTTPResponseOutput>(_ session: HTTPSession, output: inout Output)
        -> HTTPConnectionAction
    {
        if session.pending != nil { return .waitForReply }
        if session.parser.isInsideRequest {
            counters.bump(counters.timedOut)
            let s = HTTPResponseWriter.writeError(.requestTimeout, keepAlive: false, date: dates.current(), to: &output)
            counters.count(s)
        }
        return .close
    }

    private func next(_ status: HTTPParserStatus, _ session: HTTPSession) -> HTTPConnectionAction {
        if session.pending != nil { return .waitForReply }
        return status == .finished ? .close : .read
    }

    /// One request: refuse it, answer it from the cache, or hand it to a stage.
    private func handle<Output: HTTPResponseOutput>(
        _ head: HTTPRequestHead, _ session: HTTPSession,
        _ output: inout Output
    ) -> HTTPParserAction {
        counters.bump(counters.requests)
        if let observe = requestObserver { observe(session, head) }
        if let failure = head.failure {
            counters.bump(counters.refused)
            let s = HTTPResponseWriter.writeError(
                failure, keepAlive: false, isHead: head.method == .head,
                date: dates.current(),
                extra: failure == .methodNotAllowed ? .allowGetHead : .none,
                to: &output)
            counters.count(s)
            return .proceed
        }
        return withUnsafeTemporaryAllocation(byteCount: max(head.path.count, 1), alignment: 8) { buf in
            guard let n = RequestPath.normalize(head.path, into: buf) else {
                counters.bump(counters.refused)
                let s = HTTPResponseWriter.writeError(
                    .badRequest, keepAlive: false, isHead: head.method == .head,
                    date: dates.current(), to: &output)
                counters.count(s)
                return .stop
            }
            let key = UnsafeRawBufferPointer(rebasing: buf[0..<n])
            if let work = endpoint(key) {
                return handOff(work, key: key, stale: nil, head, session, &output)
            }
            switch site.cache.lookup(key, now: now) {
            case .hit(let page):
                counters.bump(counters.servedFromCache)
                let s = HTTPResponseWriter.writePage(
                    page, isHead: head.method == .head, keepAlive: head.keepAlive,
                    conditions: HTTPConditions(head), date: dates.current(),
                    to: &output)
                counters.count(s)
                return .proceed
            case .stale(let page):
                return handOff(.file, key: key, stale: page, head, session, &output)
            case .miss:
                if site.root == nil {
                    let s = HTTPResponseWriter.writeError(
                        .notFound, keepAlive: head.keepAlive,
                        isHead: head.method == .head, date: dates.current(),
                        to: &output)
                    counters.count(s)
                    return .proceed
                }
                return handOff(.file, key: key, stale: nil, head, session, &output)
            }
        }
    }

    /// The built-in endpoint a normalised path names, if any.
    @inline(__always)
    private func endpoint(_ key: UnsafeRawBufferPointer) -> HTTPDeferredRequest.Work? {
        endpoints.match(key)
    }

    /// Copies what the request needs beyond this packet and enqueues it
    /// into the stage for `work`; a refusal is answered 503 on the spot.
    private func handOff<Output: HTTPResponseOutput>(
        _ work: HTTPDeferredRequest.Work, key: UnsafeRawBufferPointer,
        stale: CachedPage?, _ head: HTTPRequestHead,
        _ session: HTTPSession, _ output: inout Output
    ) -> HTTPParserAction {
        let sink: Sink<HTTPDeferredRequest>?
        switch work {
        case .file: sink = site.fileStage
        case .bottleneck: sink = site.bottleneckStage
        case .status, .metrics: sink = site.statusStage
        }
        let request = HTTPDeferredRequest(
            work: work, session: session, path: Array(key),
            query: head.query.map { Array($0) }, isHead: head.method == .head, keepAlive: head.keepAlive,
            conditions: HTTPConditions(head), sequence: head.sequence, stalePage: stale, replyTo: replyTo)
        do {
            guard let sink else { throw SedaError.closed }
            session.pending = request
            try sink.enqueue(request)
            counters.bump(counters.deferred)
            return .pause
        } catch {
            session.pending = nil
            if let stale {
                // Serve what we have; the next lookup checks the file again.
                site.cache.abandonRevalidation(key, page: stale)
                counters.bump(counters.servedFromCache)
                let s = HTTPResponseWriter.writePage(
                    stale, isHead: request.isHead, keepAlive: head.keepAlive,
                    conditions: request.conditions, date: dates.current(),
                    to: &output)
                counters.count(s)
                return .proceed
            }
            counters.bump(counters.shed)
            let s = HTTPResponseWriter.writeError(
                .serviceUnavailable, keepAlive: head.keepAlive,
                isHead: request.isHead, date: dates.current(),
                extra: .retryAfter(seconds: site.configuration.retryAfterSeconds),
                to: &output)
            counters.count(s)
            return .proceed
        }
    }

    /// Writes the response a stage prepared; false if the connection must
    /// close after it (a stage that left no result).
    private func respond<Output: HTTPResponseOutput>(_ r: HTTPDeferredRequest, _ output: inout Output) -> Bool {
        let date = dates.current()
        let status: HTTPStatus
        switch r.result {
        case .page(let page):
            status = HTTPResponseWriter.writePage(
                page, isHead: r.isHead, keepAlive: r.keepAlive,
                conditions: r.conditions, date: date, to: &output)
        case .file(let body, let contentType, let identity):
            status = HTTPResponseWriter.writeFile(
                body, contentType: contentType, identity: identity, isHead: r.isHead,
                keepAlive: r.keepAlive, conditions: r.conditions, date: date,
                to: &output)
        case .generated(let body, let contentType):
            status = HTTPResponseWriter.writeGenerated(
                body, contentType: contentType, isHead: r.isHead,
                keepAlive: r.keepAlive, date: date, to: &output)
        case .redirectToDirectory:
            // From the normalised path: the requested one may start "//host".
            var location = RequestPath.locationPath(r.path)
            location.append(UInt8(ascii: "/"))
            if let q = r.query {
                location.append(UInt8(ascii: "?"))
                location.append(contentsOf: q)
            }
            status = location.withUnsafeBytes { l in
                HTTPResponseWriter.writeError(
                    .movedPermanently, keepAlive: r.keepAlive, isHead: r.isHead, date: date,
                    extra: .location(l), to: &output)
            }
        case .status(let s):
            status = HTTPResponseWriter.writeError(
                s, keepAlive: r.keepAlive, isHead: r.isHead, date: date,
                to: &output)
        case .pending:
            status = HTTPResponseWriter.writeError(
                .internalServerError, keepAlive: false, isHead: r.isHead,
                date: date, to: &output)
            counters.count(status)
            return false
        }
        counters.count(status)
        return true
    }
}

/// The built-in endpoints' paths back to back in one allocation, compared
/// with a length check and memcmp (no reference counting per request).
private final class EndpointKeys {
    private let bytes: UnsafeMutableRawPointer
    /// (offset, count) of each path; count -1 when the endpoint is off.
    private let bottleneck: (Int, Int)
    private let status: (Int, Int)
    private let metrics: (Int, Int)

    init(_ c: HTTPServerConfiguration) {
        let paths = [c.bottleneckPath, c.statusPath, c.metricsPath]
        let bytes = UnsafeMutableRawPointer.allocate(
            byteCount: max(paths.reduce(0) { $0 + ($1?.utf8.count ?? 0) }, 1), alignment: 1)
        self.bytes = bytes
        var spans: [(Int, Int)] = []
        var at = 0
        for path in paths {
            guard let path else {
                spans.append((0, -1))
                continue
            }
            let b = Array(path.utf8)
            b.withUnsafeBytes { (bytes + at).copyMemory(from: $0.baseAddress!, byteCount: b.count) }
            spans.append((at, b.count))
            at += b.count
        }
        (bottleneck, status, metrics) = (spans[0], spans[1], spans[2])
    }

    deinit { bytes.deallocate() }

    @inline(__always)
    func match(_ key: UnsafeRawBufferPointer) -> HTTPDeferredRequest.Work? {
        let n = key.count
        if n == bottleneck.1 && memcmp(bytes + bottleneck.0, key.baseAddress!, n) == 0 { return .bottleneck }
        if n == status.1 && memcmp(bytes + status.0, key.baseAddress!, n) == 0 { return .status }
        if n == metrics.1 && memcmp(bytes + metrics.0, key.baseAddress!, n) == 0 { return .metrics }
        return nil
    }
}
