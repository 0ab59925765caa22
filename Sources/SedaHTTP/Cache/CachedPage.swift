import Glibc

/// What identifies one version of a file: a change in any field means the
/// cached copy is stale (invalidation by mtime and size, and by inode for a
/// file replaced by rename).
public struct FileIdentity: Sendable, Equatable, Hashable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modifiedNanoseconds: Int64

    public init(device: UInt64, inode: UInt64, size: Int64, modifiedNanoseconds: Int64) {
        self.device = device
        self.inode = inode
        self.size = size
        self.modifiedNanoseconds = modifiedNanoseconds
    }

    /// The identity in a `stat` result.
    public init(_ st: stat) {
        self.init(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
            modifiedNanoseconds: Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec))
    }

    /// Last-Modified has whole seconds.
    public var modifiedSeconds: Int64 {
        modifiedNanoseconds >= 0
            ? modifiedNanoseconds / 1_000_000_000 : (modifiedNanoseconds - 999_999_999) / 1_000_000_000
    }
}

/// A representation the server sends from memory: a file's bytes (or a
/// built-in page) with its metadata and its 200 response head prebuilt, so
/// a plain GET costs one copy of the head (the Date patched in) and a
/// zero-copy write of the body.
///
/// Immutable and shared: the page cache, any number of writes in flight and
/// any thread may hold it.
public final class CachedPage: @unchecked Sendable {
    // @unchecked: every field is immutable.
    /// The content.
    public let body: HTTPBuffer
    /// Content-Type.
    public let contentType: StaticString
    /// Last-Modified.
    public let lastModified: HTTPDate
    /// The file version the bytes came from.
    public let identity: FileIdentity
    /// "HTTP/1.1 200 OK ... Accept-Ranges: bytes\r\n" without the
    /// Connection line and the blank line; its Date is patched per response.
    let okHead: HTTPBuffer
    /// Where the 29 date bytes sit in ``okHead``.
    let okHeadDateOffset: Int

    /// A page over `body`; the head is built here, once.
    public init(body: HTTPBuffer, contentType: StaticString, identity: FileIdentity) {
        self.body = body
        self.contentType = contentType
        self.identity = identity
        let lastModified = HTTPDate(seconds: identity.modifiedSeconds)
        self.lastModified = lastModified
        let capacity = 256 + contentType.utf8CodeUnitCount
        var dateOffset = 0
        let head = withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 8) { tmp -> HTTPBuffer in
            var w = HeadWriter(tmp)
            w.append(HTTPStatus.ok.statusLine)
            w.append(serverHeader)
            w.append("Date: ")
            dateOffset = w.count
            w.append(HTTPDate(seconds: 0))
            w.append("\r\nContent-Type: ")
            w.append(contentType)
            w.append("\r\nContent-Length: ")
            w.append(decimal: Int64(body.count))
            w.append("\r\nLast-Modified: ")
            w.append(lastModified)
            w.append("\r\nAccept-Ranges: bytes\r\n")
            return HTTPBuffer(copying: w.written)
        }
        okHead = head
        okHeadDateOffset = dateOffset
    }

    /// Bytes the page occupies in the cache (body, head, bookkeeping).
    public var footprint: Int { body.count + okHead.count + 128 }
}
