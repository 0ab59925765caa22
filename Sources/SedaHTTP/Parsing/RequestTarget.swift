/// Splits a request target (RFC 9112 3.2) into its path and query.
///
/// Origin form ("/a/b?q") and absolute form ("http://host:8080/a?q", which
/// a server must accept) are taken; the asterisk form ("*", OPTIONS only)
/// and the authority form (CONNECT only) are not, nor an absolute form with
/// another scheme or a bad authority. The path stays percent-encoded
/// (``RequestPath`` decodes it). No allocation: the results are views into
/// the target (or a constant "/").
enum RequestTarget {
    struct Parts {
        var path: UnsafeRawBufferPointer
        var query: UnsafeRawBufferPointer?
    }

    /// "/" for an absolute-form target with an empty path.
    nonisolated(unsafe) static let rootPath: UnsafeRawBufferPointer = {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
        p.storeBytes(of: UInt8(ascii: "/"), as: UInt8.self)
        return UnsafeRawBufferPointer(start: p, count: 1)
    }()

    /// The path and query of `target`, or nil for a target the server refuses (400).
    static func split(_ target: UnsafeRawBufferPointer) -> Parts? {
        guard let first = target.first else { return nil }
        var pathStart = 0
        if first != UInt8(ascii: "/") {
            // Absolute form: http:// or https://, an authority, then the path.
            let schemeEnd: Int
            if hasPrefixLowercase(target, "http://") {
                schemeEnd = 7
            } else if hasPrefixLowercase(target, "https://") {
                schemeEnd = 8
            } else {
                return nil
            }
            var i = schemeEnd
            while i < target.count, target[i] != UInt8(ascii: "/"), target[i] != UInt8(ascii: "?"),
                target[i] != UInt8(ascii: "#")
            {
                i += 1
            }
            let authority = UnsafeRawBufferPointer(rebasing: target[schemeEnd..<i])
            guard authority.count > 0, HostValidation.isValid(authority) else { return nil }
            if i == target.count || target[i] != UInt8(ascii: "/") {
                var query: UnsafeRawBufferPointer? = nil
                if i < target.count, target[i] == UInt8(ascii: "?") {
                    query = queryView(target, from: i + 1)
                }
                return Parts(path: rootPath, query: query)
            }
            pathStart = i
        }
        var end = pathStart
        while end < target.count, target[end] != UInt8(ascii: "?"), target[end] != UInt8(ascii: "#") { end += 1 }
        let path = UnsafeRawBufferPointer(rebasing: target[pathStart..<end])
        var query: UnsafeRawBufferPointer? = nil
        if end < target.count, target[end] == UInt8(ascii: "?") { query = queryView(target, from: end + 1) }
        return Parts(path: path, query: query)
    }

    private static func queryView(_ target: UnsafeRawBufferPointer, from start: Int) -> UnsafeRawBufferPointer {
        var end = start
        while end < target.count, target[end] != UInt8(ascii: "#") { end += 1 }
        return UnsafeRawBufferPointer(rebasing: target[start..<end])
    }

    private static func hasPrefixLowercase(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        let n = lower.utf8CodeUnitCount
        guard bytes.count >= n else { return false }
        return equalsLowercase(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), lower)
    }
}

/// Host header syntax (RFC 9110 7.2, RFC 3986 3.2.2): `uri-host [ ":" port ]`
/// where uri-host is an IP literal in brackets, an IPv4 address or a
/// registered name (unreserved, sub-delims, percent-encoded). An empty value
/// is allowed (RFC 9112 3.2: a client sends one when the target has no
/// authority); userinfo, slashes, blanks and control bytes are not.
enum HostValidation {
    static func isValid(_ host: UnsafeRawBufferPointer) -> Bool {
        let n = host.count
        if n == 0 { return true }
        if n > 255 + 6 { return false }
        var i = 0
        if host[0] == UInt8(ascii: "[") {
            // IP-literal: hex digits, ':' and '.' (IPv6, IPv4-mapped), up to ']'.
            i = 1
            while i < n, host[i] != UInt8(ascii: "]") {
                let c = host[i]
                guard isHexDigit(c) || c == UInt8(ascii: ":") || c == UInt8(ascii: ".") else { return false }
                i += 1
            }
            guard i < n, i > 1 else { return false }
            i += 1
        } else {
            let table = regNameTable
            while i < n, host[i] != UInt8(ascii: ":") {
                let c = host[i]
                if table[Int(c)] != 0 {
                    i += 1
                    continue
                }
                guard c == UInt8(ascii: "%"), i + 2 < n, isHexDigit(host[i + 1]), isHexDigit(host[i + 2]) else {
                    return false
                }
                i += 3
            }
        }
        if i == n { return true }
        guard host[i] == UInt8(ascii: ":") else { return false }
        // Port: digits only, at most 5, not above 65535.
        let digits = n - i - 1
        guard digits <= 5 else { return false }
        var port = 0
        for j in (i + 1)..<n {
            let c = host[j]
            guard c >= 0x30 && c <= 0x39 else { return false }
            port = port * 10 + Int(c - 0x30)
        }
        return port <= 65535
    }

    /// 1 for the bytes of ``isRegNameByte(_:)``: one load per byte.
    nonisolated(unsafe) static let regNameTable: UnsafePointer<UInt8> = {
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for c in 0..<256 { t[c] = isRegNameByte(UInt8(c)) ? 1 : 0 }
        return UnsafePointer(t)
    }()

    /// unreserved / sub-delims (RFC 3986), without '%' (handled apart).
    @inline(__always)
    static func isRegNameByte(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
            UInt8(ascii: "="):
            return true
        default: return false
        }
    }
}

@inline(__always)
func isHexDigit(_ c: UInt8) -> Bool {
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}

@inline(__always)
func hexValue(_ c: UInt8) -> UInt8 {
    c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10
}
