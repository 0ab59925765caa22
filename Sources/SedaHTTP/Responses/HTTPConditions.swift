/// A Range header's single byte range (RFC 9110 14.1.2).
public enum ByteRangeSpec: Sendable, Equatable {
    /// "bytes=first-last" or "bytes=first-" (last nil).
    case span(first: Int64, last: Int64?)
    /// "bytes=-n": the last n bytes.
    case suffix(Int64)
    /// Several ranges: the server does not do multipart responses and sends
    /// the whole representation (200) instead, as RFC 9110 allows.
    case multiple

    /// Parses a Range value; nil when it is not a valid bytes range (the
    /// header is then ignored).
    public static func parse(_ v: UnsafeRawBufferPointer) -> ByteRangeSpec? {
        let n = v.count
        guard n > 6 else { return nil }
        let unit = UnsafeRawBufferPointer(rebasing: v[0..<6])
        guard equalsLowercase(unit, "bytes=") else { return nil }
        var i = 6
        func blanks() { while i < n, v[i] == 0x20 || v[i] == 0x09 { i += 1 } }
        func number() -> Int64? {
            var x: Int64 = 0
            var digits = 0
            while i < n, v[i] >= 0x30, v[i] <= 0x39 {
                let (m, o1) = x.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int64(v[i] - 0x30))
                if o1 || o2 { return nil }
                x = s
                i += 1
                digits += 1
            }
            return digits > 0 ? x : nil
        }
        blanks()
        let spec: ByteRangeSpec
        if i < n, v[i] == UInt8(ascii: "-") {
            i += 1
            guard let count = number() else { return nil }
            spec = .suffix(count)
        } else {
            guard let first = number(), i < n, v[i] == UInt8(ascii: "-") else { return nil }
            i += 1
            let last = number()
            if let last, last < first { return nil }  // invalid: ignore the header
            spec = .span(first: first, last: last)
        }
        blanks()
        if i == n { return spec }
        return v[i] == UInt8(ascii: ",") ? .multiple : nil
    }

    /// The range resolved against a representation of `size` bytes:
    /// (offset, count), or nil when unsatisfiable (416).
    public func resolve(size: Int64) -> (offset: Int64, count: Int64)? {
        switch self {
        case .span(let first, let last):
            guard first < size else { return nil }
            let end = min(last ?? (size - 1), size - 1)
            return (first, end - first + 1)
        case .suffix(let n):
            guard n > 0, size > 0 else { return nil }
            let count = min(n, size)
            return (size - count, count)
        case .multiple:
            return (0, size)
        }
    }
}

/// The conditional and range headers of a request, parsed (a value: no
/// allocation). Parsed only when present, so a plain GET costs three nil
/// checks.
public struct HTTPConditions: Sendable, Equatable {
    /// If-Modified-Since, in seconds since the epoch (nil: absent or not a date).
    public var ifModifiedSince: Int64?
    /// Range (nil: absent or not a valid bytes range).
    public var range: ByteRangeSpec?
    /// If-Range as a date; `ifRangePresent` without a date is an entity tag,
    /// which never matches (the server sends no ETag).
    public var ifRangeDate: Int64?
    public var ifRangePresent = false

    public init() {}

    /// The conditions of a request head.
    @inline(__always)
    public init(_ head: HTTPRequestHead) {
        if let v = head.ifModifiedSince { ifModifiedSince = HTTPDate.parse(v) }
        if let v = head.range { range = ByteRangeSpec.parse(v) }
        if let v = head.ifRange {
            ifRangePresent = true
            ifRangeDate = HTTPDate.parse(v)
        }
    }

    /// Whether none is present.
    public var isEmpty: Bool { ifModifiedSince == nil && range == nil && !ifRangePresent }
}
