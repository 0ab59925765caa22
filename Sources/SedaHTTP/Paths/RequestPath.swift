/// Turns the encoded path of a request into the path the server looks up:
/// percent-decoded, dot segments removed (RFC 3986 5.2.4), repeated slashes
/// merged, never above the root.
///
/// Refused (nil, answered 400): a path not starting with '/', a bad
/// percent escape, an encoded NUL (`%00`) or slash (`%2f`), a control byte,
/// and any ".." (plain or `%2e%2e`) that would climb above the root. Decoding
/// comes before dot-segment removal, so an encoded dot is a dot.
public enum RequestPath {
    /// Normalises `path` into `out`, which must hold at least `path.count`
    /// bytes (the result is never longer). Returns the result's length (it
    /// starts with '/'; it ends with '/' when the path named a directory
    /// explicitly), or nil to refuse. No allocation; any thread.
    public static func normalize(_ path: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        let n = path.count
        guard n > 0, out.count >= n, path[0] == UInt8(ascii: "/") else { return nil }
        // Fast path: most paths need no rewriting (no escape, no dot segment,
        // no repeated slash): one table load per byte, then a copy.
        let table = pathByteClass
        var k = 0
        while k < n {
            let cls = table[Int(path[k])]
            if cls == 0 {
                k += 1
                continue
            }
            if cls == 1 {  // '/': fine unless a '/' or '.' follows
                if k + 1 < n {
                    let next = path[k + 1]
                    if next == UInt8(ascii: "/") || next == UInt8(ascii: ".") { break }
                }
                k += 1
                continue
            }
            if cls == 3 { return nil }  // a control byte
            break  // '%': decode on the general path
        }
        if k == n {
            out.baseAddress!.copyMemory(from: path.baseAddress!, byteCount: n)
            return n
        }
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        out[0] = slash
        var w = 1
        var i = 1
        while i <= n {
            let segmentStart = w
            var j = i
            while j < n, path[j] != slash {
                var c = path[j]
                if c == UInt8(ascii: "%") {
                    guard j + 2 < n, isHexDigit(path[j + 1]), isHexDigit(path[j + 2]) else { return nil }
                    c = hexValue(path[j + 1]) << 4 | hexValue(path[j + 2])
                    if c == slash { return nil }
                    j += 3
                } else {
                    j += 1
                }
                if c < 0x20 || c == 0x7F { return nil }  // %00 and other control bytes
                out[w] = c
                w += 1
            }
            let length = w - segmentStart
            let atEnd = j >= n
            if length == 0 {
                // "//" merges; a trailing '/' is already written.
            } else if length == 1 && out[segmentStart] == dot {
                w = segmentStart
            } else if length == 2 && out[segmentStart] == dot && out[segmentStart + 1] == dot {
                if segmentStart == 1 { return nil }  // above the root
                var k = segmentStart - 2  // the byte before the '/' ending the previous segment
                while out[k] != slash { k -= 1 }
                w = k + 1
            } else if !atEnd {
                out[w] = slash
                w += 1
            }
            i = j + 1
        }
        return w
    }

    /// A normalised path (``normalize(_:into:)``'s result) as a URI path
    /// for a Location header, percent-encoding every byte outside the
    /// unreserved characters, the sub-delimiters, ':', '@' and '/'. Since
    /// the normalised path starts with one '/' and has no empty segment, the
    /// result is never a network-path reference ("//host", nor "/\\host",
    /// which browsers read the same way): a redirect stays on this site.
    /// Any thread; allocates.
    public static func locationPath(_ normalized: [UInt8]) -> [UInt8] {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(normalized.count)
        for c in normalized {
            if isLocationSafe(c) {
                out.append(c)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(c >> 4)])
                out.append(hex[Int(c & 15)])
            }
        }
        return out
    }

    /// RFC 3986 pchar minus '%' (unreserved, sub-delims, ':', '@'), and '/'.
    private static func isLocationSafe(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "-._~!$&'()*+,;=:@/".utf8.contains(c)
        }
    }

    /// Byte classes for the fast path: 0 plain, 1 '/', 2 '%', 3 refused (control).
    nonisolated(unsafe) static let pathByteClass: UnsafePointer<UInt8> = {
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for c in 0..<256 {
            t[c] = c < 0x20 || c == 0x7F ? 3 : c == 0x2F ? 1 : c == 0x25 ? 2 : 0
        }
        return UnsafePointer(t)
    }()

    /// ``normalize(_:into:)`` on a string (tests and cold paths; allocates).
    public static func normalized(_ path: String) -> String? {
        let input = Array(path.utf8)
        var out = [UInt8](repeating: 0, count: max(input.count, 1))
        let n = input.withUnsafeBytes { src in out.withUnsafeMutableBytes { normalize(src, into: $0) } }
        return n.map { String(decoding: out[0..<$0], as: UTF8.self) }
    }
}
