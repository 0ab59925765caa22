/// A header an error response carries beside the usual ones.
public enum HTTPExtraHeader {
    case none
    /// "Allow: GET, HEAD" (405).
    case allowGetHead
    /// "Retry-After: n" (503 when shedding load).
    case retryAfter(seconds: Int)
    /// "Location: ..." (301 to a directory's slash-terminated path).
    case location(UnsafeRawBufferPointer)
    /// "Content-Range: bytes */size" (416).
    case unsatisfiedRange(size: Int64)
}

/// Writes responses into an ``HTTPResponseOutput``: pages from memory (the
/// fast path: one copy of a prebuilt head with the Date patched in, and the
/// body by reference), files by sendfile, generated pages, error pages. Each
/// function returns the status it sent (for statistics and logs).
///
/// Every response carries Server, Date, Content-Length (except 304) and a
/// Connection line (`keep-alive` or `close`), so HTTP/1.0 and 1.1 clients
/// read it the same way. Thread rules: any thread; the output's own rules
/// apply.
public enum HTTPResponseWriter {
    /// The response to a GET or HEAD of `page`, with conditional and range
    /// handling: 304 when If-Modified-Since is not older than the page, 206
    /// for a satisfiable single Range (honouring If-Range), 416 for an
    /// unsatisfiable one, 200 with the whole page otherwise (several ranges
    /// are refused that way: no multipart responses).
    @inline(__always)
    @discardableResult
    public static func writePage(
        _ page: CachedPage, isHead: Bool, keepAlive: Bool, conditions: HTTPConditions,
        date: HTTPDate, to out: inout some HTTPResponseOutput
    ) -> HTTPStatus {
        if conditions.isEmpty {
            let head = page.okHead
            withUnsafeTemporaryAllocation(byteCount: head.count + 32, alignment: 8) { tmp in
                var w = HeadWriter(tmp)
                w.append(head.bytes)
                date.withBytes { d in
                    (w.start + page.okHeadDateOffset).copyMemory(from: d.baseAddress!, byteCount: HTTPDate.length)
                }
                w.appendConnection(keepAlive: keepAlive)
                w.append("\r\n")
                out.writeCopy(w.written)
            }
            if !isHead && page.body.count > 0 { out.write(page.body, offset: 0, count: page.body.count) }
            return .ok
        }
        return writeRepresentation(
            body: .buffer(page.body), size: Int64(page.body.count),
            contentType: page.contentType, lastModified: page.lastModified, isHead: isHead,
            keepAlive: keepAlive, conditions: conditions, date: date, to: &out)
    }

    /// The response to a GET or HEAD of an open file sent with sendfile
    /// (files too large for the page cache); the same rules as ``writePage``.
    @discardableResult
    public static func writeFile(
        _ file: HTTPFileBody, contentType: StaticString, identity: FileIdentity,
        isHead: Bool, keepAlive: Bool, conditions: HTTPConditions, date: HTTPDate,
        to out: inout some HTTPResponseOutput
    ) -> HTTPStatus {
        writeRepresentation(
            body: .file(file), size: identity.size, contentType: contentType,
            lastModified: HTTPDate(seconds: identity.modifiedSeconds), isHead: isHead,
            keepAlive: keepAlive, conditions: conditions, date: date, to: &out)
    }

    enum Body {
        case buffer(HTTPBuffer)
        case file(HTTPFileBody)
    }

    static func writeRepresentation(
        body: Body, size: Int64, contentType: StaticString, lastModified: HTTPDate,
        isHead: Bool, keepAlive: Bool, conditions: HTTPConditions, date: HTTPDate,
        to out: inout some HTTPResponseOutput
    ) -> HTTPStatus {
        var status = HTTPStatus.ok
        var offset: Int64 = 0
        var count = size
        if let ims = conditions.ifModifiedSince, ims <= date.seconds, lastModified.seconds <= ims {
            status = .notModified
        } else if let range = conditions.range, range != .multiple,
            !conditions.ifRangePresent || conditions.ifRangeDate == lastModified.seconds
        {
            guard let r = range.resolve(size: size) else {
                return writeError(
                    .rangeNotSatisfiable, keepAlive: keepAlive, isHead: isHead, date: date,
                    extra: .unsatisfiedRange(size: size), to: &out)
            }
            status = .partialContent
            (offset, count) = r
        }
        withUnsafeTemporaryAllocation(byteCount: 512 + contentType.utf8CodeUnitCount, alignment: 8) { tmp in
            var w = HeadWriter(tmp)
            w.append(status.statusLine)
            w.append(serverHeader)
            w.append("Date: ")
            w.append(date)
            w.append("\r\nLast-Modified: ")
            w.append(lastModified)
            w.append("\r\n")
            if status != .notModified {
                w.append("Content-Type: ")
                w.append(contentType)
                w.append("\r\nContent-Length: ")
                w.append(decimal: count)
                w.append("\r\nAccept-Ranges: bytes\r\n")
            }
            if status == .partialContent {
                w.append("Content-Range: bytes ")
                w.append(decimal: offset)
                w.append("-")
                w.append(decimal: offset + count - 1)
                w.append("/")
                w.append(decimal: size)
                w.append("\r\n")
            }
            w.appendConnection(keepAlive: keepAlive)
            w.append("\r\n")
            out.writeCopy(w.written)
        }
        if !isHead && status != .notModified && count > 0 {
            switch body {
            case .buffer(let b): out.write(b, offset: Int(offset), count: Int(count))
            case .file(let f): out.sendFile(f, offset: offset, count: count)
            }
        }
        return status
    }

    /// A generated page (status, metrics): sent whole, never cached by
    /// clients (`Cache-Control: no-store`).
    @discardableResult
    public static func writeGenerated(
        _ body: HTTPBuffer, contentType: StaticString, isHead: Bool, keepAlive: Bool,
        date: HTTPDate, to out: inout some HTTPResponseOutput
    ) -> HTTPStatus {
        withUnsafeTemporaryAllocation(byteCount: 256 + contentType.utf8CodeUnitCount, alignment: 8) { tmp in
            var w = HeadWriter(tmp)
            w.append(HTTPStatus.ok.statusLine)
            w.append(serverHeader)
            w.append("Date: ")
            w.append(date)
            w.append("\r\nContent-Type: ")
            w.append(contentType)
            w.append("\r\nContent-Length: ")
            w.append(decimal: Int64(body.count))
            w.append("\r\nCache-Control: no-store\r\n")
            w.appendConnection(keepAlive: keepAlive)
            w.append("\r\n")
            out.writeCopy(w.written)
        }
        if !isHead && body.count > 0 { out.write(body, offset: 0, count: body.count) }
        return .ok
    }

    /// An error (or redirect) response with a small HTML body. A refused
    /// request is answered with `keepAlive: false`; load shedding (503 with
    /// ``HTTPExtraHeader/retryAfter(seconds:)``) may keep the connection.
    @discardableResult
    public static func writeError(
        _ status: HTTPStatus, keepAlive: Bool, isHead: Bool = false, date: HTTPDate,
        extra: HTTPExtraHeader = .none,
        to out: inout some HTTPResponseOutput
    ) -> HTTPStatus {
        let body = ErrorPages.body(for: status)
        var extraBytes = 0
        if case .location(let l) = extra { extraBytes = l.count }
        withUnsafeTemporaryAllocation(byteCount: 384 + extraBytes + body.count, alignment: 8) { tmp in
            var w = HeadWriter(tmp)
            w.append(status.statusLine)
            w.append(serverHeader)
            w.append("Date: ")
            w.append(date)
            w.append("\r\nContent-Type: text/html\r\nContent-Length: ")
            w.append(decimal: Int64(body.count))
            w.append("\r\n")
            switch extra {
            case .none: break
            case .allowGetHead: w.append("Allow: GET, HEAD\r\n")
            case .retryAfter(let s):
                w.append("Retry-After: ")
                w.append(decimal: Int64(s))
                w.append("\r\n")
            case .location(let l):
                w.append("Location: ")
                w.append(l)
                w.append("\r\n")
            case .unsatisfiedRange(let size):
                w.append("Content-Range: bytes */")
                w.append(decimal: size)
                w.append("\r\n")
            }
            w.appendConnection(keepAlive: keepAlive)
            w.append("\r\n")
            if !isHead { w.append(body.bytes) }
            out.writeCopy(w.written)
        }
        return status
    }
}

/// The small HTML bodies of error responses, built once per status.
enum ErrorPages {
    private static let known: [Int: HTTPBuffer] = {
        var pages: [Int: HTTPBuffer] = [:]
        for s in [
            HTTPStatus.movedPermanently, .badRequest, .forbidden, .notFound, .methodNotAllowed,
            .requestTimeout, .uriTooLong, .rangeNotSatisfiable, .headerFieldsTooLarge,
            .internalServerError, .notImplemented, .serviceUnavailable, .versionNotSupported,
        ] {
            pages[s.code] = make(s)
        }
        return pages
    }()

    static func body(for status: HTTPStatus) -> HTTPBuffer { known[status.code] ?? make(status) }

    private static func make(_ s: HTTPStatus) -> HTTPBuffer {
        let title = "\(s.code) \(s.reason)"
        return HTTPBuffer("<html><head><title>\(title)</title></head><body><h1>\(title)</h1><hr>seda</body></html>\n")
    }
}
