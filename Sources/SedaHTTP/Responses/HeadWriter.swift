/// Appends a response head to memory the caller sized: constant strings,
/// decimal numbers, dates. No allocation, no String.
struct HeadWriter {
    let start: UnsafeMutableRawPointer
    let capacity: Int
    var count = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) {
        start = buffer.baseAddress!
        capacity = buffer.count
    }

    var written: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: start, count: count) }

    @inline(__always)
    mutating func append(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        precondition(count + n <= capacity, "response head overflows its \(capacity)-byte buffer")
        (start + count).copyMemory(from: s.utf8Start, byteCount: n)
        count += n
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        precondition(count + n <= capacity, "response head overflows its \(capacity)-byte buffer")
        if n > 0 { (start + count).copyMemory(from: bytes.baseAddress!, byteCount: n) }
        count += n
    }

    mutating func append(decimal value: Int64) {
        precondition(count + 20 <= capacity, "response head overflows its \(capacity)-byte buffer")
        var v = value < 0 ? 0 : UInt64(value)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes, enough for 20 digits
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[23 - n] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                v /= 10
                n += 1
            } while v > 0
            (start + count).copyMemory(from: d.baseAddress! + 24 - n, byteCount: n)
        }
        count += n
    }

    @inline(__always)
    mutating func append(_ date: HTTPDate) {
        date.withBytes { append($0) }
    }

    /// The Connection line for `keepAlive`.
    @inline(__always)
    mutating func appendConnection(keepAlive: Bool) {
        append(keepAlive ? "Connection: keep-alive\r\n" : "Connection: close\r\n")
    }
}

/// The Server header every response carries.
let serverHeader: StaticString = "Server: seda\r\n"
