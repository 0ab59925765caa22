import CHTTPParser

/// A run of bytes inside the buffer being parsed, as an offset from
/// ``ParseState/base`` (offsets survive the buffer moving or growing).
/// Stored in 32 bits: a connection's state stays small (requests are far
/// below 2 GB).
struct ByteSpan {
    private var start32: Int32 = 0
    /// -1: absent.
    private var count32: Int32 = -1

    init() {}

    init(start: Int, count: Int) {
        start32 = Int32(start)
        count32 = Int32(count)
    }

    var start: Int {
        get { Int(start32) }
        set { start32 = Int32(newValue) }
    }

    var count: Int {
        get { Int(count32) }
        set { count32 = Int32(newValue) }
    }

    var isPresent: Bool { count32 >= 0 }

    /// Extends the span with `length` bytes at `offset`; false if they do not
    /// follow on (an obsolete line folding split the value).
    @inline(__always)
    mutating func extend(at offset: Int, length: Int) -> Bool {
        if count32 < 0 {
            start = offset
            count = length
            return true
        }
        if offset != start + count { return false }
        count += length
        return true
    }

    func view(_ base: UnsafeRawPointer) -> UnsafeRawBufferPointer? {
        count32 < 0 ? nil : UnsafeRawBufferPointer(start: base + start, count: count)
    }
}

/// Which header the field being read is, among the few the server reads.
enum HeaderKind: UInt8 {
    case other, host, ifModifiedSince, range, ifRange
}

/// What http_parser's callbacks record for one request: the C parser itself
/// and the spans of the fields the server needs. Lives in memory the
/// ``HTTPRequestParser`` allocates once per connection; `parser.data` points
/// here, so the callbacks reach it with no reference counting.
struct ParseState {
    var parser = http_parser()
    /// Start of the bytes being parsed (the packet, or the parser's buffer).
    var base: UnsafePointer<CChar>? = nil
    var url = ByteSpan()
    var host = ByteSpan()
    var hostLines: Int32 = 0
    var ifModifiedSince = ByteSpan()
    var range = ByteSpan()
    var ifRange = ByteSpan()
    var field = ByteSpan()
    var value = ByteSpan()
    var headerLines: Int32 = 0
    var hasBody = false
    /// Set by on_message_complete (which also pauses the parser).
    var complete = false
    /// A status a callback chose before failing the parse (0: none).
    var failure: Int32 = 0
    // Limits, copied from HTTPLimits.
    var maxTarget = 0
    var maxLine = 0
    var maxLines: Int32 = 0

    /// Forgets the last request's fields (not the limits, not the parser).
    mutating func resetRequest() {
        url = ByteSpan()
        host = ByteSpan()
        hostLines = 0
        ifModifiedSince = ByteSpan()
        range = ByteSpan()
        ifRange = ByteSpan()
        field = ByteSpan()
        value = ByteSpan()
        headerLines = 0
        hasBody = false
        complete = false
        failure = 0
    }

    /// Moves every span `delta` bytes towards the start (the bytes were moved).
    mutating func rebase(by delta: Int) {
        url.start -= delta
        host.start -= delta
        ifModifiedSince.start -= delta
        range.start -= delta
        ifRange.start -= delta
        field.start -= delta
        value.start -= delta
    }

    /// Files the header just read under its kind, trimming trailing blanks
    /// (http_parser already skipped the leading ones).
    mutating func finishHeader() {
        guard let base, field.isPresent else { return }
        var v = value
        if !v.isPresent { v = ByteSpan(start: field.start + field.count, count: 0) }
        let raw = UnsafeRawPointer(base)
        while v.count > 0 {
            let c = raw.load(fromByteOffset: v.start + v.count - 1, as: UInt8.self)
            if c != 0x20 && c != 0x09 { break }
            v.count -= 1
        }
        switch classify(UnsafeRawBufferPointer(start: raw + field.start, count: field.count)) {
        case .host:
            hostLines += 1
            host = v
        case .ifModifiedSince: ifModifiedSince = v
        case .range: range = v
        case .ifRange: ifRange = v
        case .other: break
        }
        field = ByteSpan()
        value = ByteSpan()
    }
}

/// Case-insensitive match of a header name against the few the server reads.
@inline(__always)
func classify(_ name: UnsafeRawBufferPointer) -> HeaderKind {
    switch name.count {
    case 4: return equalsLowercase(name, "host") ? .host : .other
    case 5: return equalsLowercase(name, "range") ? .range : .other
    case 8: return equalsLowercase(name, "if-range") ? .ifRange : .other
    case 17: return equalsLowercase(name, "if-modified-since") ? .ifModifiedSince : .other
    default: return .other
    }
}

/// Whether `bytes` equals `lower` (lowercase ASCII) ignoring ASCII case.
@inline(__always)
func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
    guard bytes.count == lower.utf8CodeUnitCount else { return false }
    let l = lower.utf8Start
    for i in 0..<bytes.count {
        var c = bytes[i]
        if c >= 0x41 && c <= 0x5A { c |= 0x20 }
        if c != l[i] { return false }
    }
    return true
}

// MARK: - http_parser callbacks (plain C function pointers: no context, no ARC)

@inline(__always)
private func state(_ p: UnsafeMutablePointer<http_parser>?) -> UnsafeMutablePointer<ParseState> {
    p!.pointee.data.assumingMemoryBound(to: ParseState.self)
}

private let onMessageBegin: http_cb = { p in
    state(p).pointee.resetRequest()
    return 0
}

private let onURL: http_data_cb = { p, at, length in
    let s = state(p)
    let offset = at! - s.pointee.base!
    if !s.pointee.url.extend(at: offset, length: length) {
        s.pointee.failure = 400
        return 1
    }
    if s.pointee.url.count > s.pointee.maxTarget {
        s.pointee.failure = 414
        return 1
    }
    return 0
}

private let onHeaderField: http_data_cb = { p, at, length in
    let s = state(p)
    let offset = at! - s.pointee.base!
    if s.pointee.value.isPresent { s.pointee.finishHeader() }
    if !s.pointee.field.isPresent {
        s.pointee.headerLines += 1
        if s.pointee.headerLines > s.pointee.maxLines {
            s.pointee.failure = 431
            return 1
        }
    }
    if !s.pointee.field.extend(at: offset, length: length) {
        s.pointee.failure = 400
        return 1
    }
    if s.pointee.field.count > s.pointee.maxLine {
        s.pointee.failure = 431
        return 1
    }
    return 0
}

private let onHeaderValue: http_data_cb = { p, at, length in
    let s = state(p)
    let offset = at! - s.pointee.base!
    if !s.pointee.value.extend(at: offset, length: length) {
        // An obsolete line folding (RFC 9112 5.2: a server may refuse it with 400).
        s.pointee.failure = 400
        return 1
    }
    if s.pointee.field.count + s.pointee.value.count > s.pointee.maxLine {
        s.pointee.failure = 431
        return 1
    }
    return 0
}

private let onHeadersComplete: http_cb = { p in
    let s = state(p)
    if s.pointee.field.isPresent { s.pointee.finishHeader() }
    let parser = p!.pointee
    let chunked = (parser.flags & UInt32(F_CHUNKED.rawValue)) != 0
    s.pointee.hasBody =
        chunked || parser.uses_transfer_encoding != 0
        || (parser.content_length > 0 && parser.content_length != UInt64.max)
    // Never read a body: a request with one is refused and its connection
    // closed, so the parser may skip it (1: "no body follows").
    return 1
}

private let onMessageComplete: http_cb = { p in
    state(p).pointee.complete = true
    // Hand each request to Swift on its own: http_parser_execute returns
    // right after this message with HPE_PAUSED.
    http_parser_pause(p, 1)
    return 0
}

/// The callbacks, shared by every parser (read-only after initialisation).
nonisolated(unsafe) let parserSettings: UnsafeMutablePointer<http_parser_settings> = {
    let s = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    http_parser_settings_init(s)
    s.pointee.on_message_begin = onMessageBegin
    s.pointee.on_url = onURL
    s.pointee.on_header_field = onHeaderField
    s.pointee.on_header_value = onHeaderValue
    s.pointee.on_headers_complete = onHeadersComplete
    s.pointee.on_message_complete = onMessageComplete
    return s
}()
