import Glibc

/// Bytes that stay valid as long as someone holds the buffer: a page-cache
/// body, a prebuilt response. Immutable once published, so any number of
/// writes on any threads may hold and read it at once.
///
/// Zero-copy writes: the socket wiring passes
/// `Unmanaged.passRetained(buffer).toOpaque()` as the release context of
/// `seda_conn_write` and releases it in the callback, so the bytes outlive
/// the write even if the page cache evicts the entry meanwhile.
public final class HTTPBuffer: @unchecked Sendable {
    // @unchecked: the bytes are written only before the buffer is shared.
    /// The first byte.
    public let baseAddress: UnsafeRawPointer
    /// Bytes in the buffer.
    public let count: Int

    /// A zero-filled buffer of `count` bytes, to be filled through
    /// ``withUnsafeMutableBytes(_:)`` before it is shared.
    public init(count: Int) {
        precondition(count >= 0, "HTTPBuffer count \(count) is negative")
        guard let p = calloc(max(count, 1), 1) else { fatalError("SedaHTTP: out of memory for \(count) bytes") }
        baseAddress = UnsafeRawPointer(p)
        self.count = count
    }

    /// A buffer holding a copy of `bytes`.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(count: bytes.count)
        if let src = bytes.baseAddress, bytes.count > 0 {
            UnsafeMutableRawPointer(mutating: baseAddress).copyMemory(from: src, byteCount: bytes.count)
        }
    }

    /// A buffer holding the UTF-8 of `string`.
    public convenience init(_ string: String) {
        var s = string
        self.init(count: s.utf8.count)
        s.withUTF8 {
            UnsafeMutableRawPointer(mutating: baseAddress).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
        }
    }

    deinit { free(UnsafeMutableRawPointer(mutating: baseAddress)) }

    /// The bytes, read-only.
    @inline(__always)
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: baseAddress, count: count) }

    /// Fills the buffer; only before it is shared with another thread.
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: baseAddress), count: count))
    }
}

/// An open file whose bytes go out with sendfile(2) (files too large for
/// the page cache). Owns the descriptor and closes it when the last holder
/// lets go, so a write in flight keeps it open.
public final class HTTPFileBody: @unchecked Sendable {
    // @unchecked: immutable.
    /// The open descriptor (read-only, close-on-exec).
    public let descriptor: Int32
    /// The file's size when it was opened.
    public let size: Int64

    /// Takes ownership of `descriptor`.
    public init(adopting descriptor: Int32, size: Int64) {
        self.descriptor = descriptor
        self.size = size
    }

    deinit { close(descriptor) }
}

/// Where a response's bytes go: the connection's output. The socket wiring
/// implements it over `seda_conn_write_copy` / `seda_conn_write` /
/// `seda_conn_sendfile`; tests collect the bytes.
///
/// Calls arrive in response order, on the connection's owner thread; the
/// output sends what it was given in the order given (one writev per loop
/// iteration is the socket layer's business).
public protocol HTTPResponseOutput {
    /// Copies `bytes` (a response head, a small error page) into the output.
    mutating func writeCopy(_ bytes: UnsafeRawBufferPointer)
    /// Queues `count` bytes of `buffer` from `offset` without copying; the
    /// output holds `buffer` until they are sent (or the connection dies).
    mutating func write(_ buffer: HTTPBuffer, offset: Int, count: Int)
    /// Queues `count` bytes of `file` from `offset` (sendfile); the output
    /// holds `file` until they are sent.
    mutating func sendFile(_ file: HTTPFileBody, offset: Int64, count: Int64)
}
