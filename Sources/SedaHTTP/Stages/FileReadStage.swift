import Glibc
import Seda

/// The file-read stage (Haboob's "cache miss" path): opens the file a
/// request names under the document root (``DocumentRoot/open(_:)``, the
/// blocking part, on this dedicated pool) and decides:
/// - a page to revalidate whose file is unchanged (size, mtime, inode) is
///   reused;
/// - a file too large to cache stays open for sendfile;
/// - an empty file becomes an empty page at once;
/// - any other file is read asynchronously by the site's ``FileStage``
///   (``FileDiskReader``): its completion builds the page, fills the cache
///   and replies. Only when the file stage refuses the descriptor (it is
///   being destroyed) is the file read here with pread.
/// Requests it answers itself are sent back at once.
struct FileReadStage: EventHandler {
    typealias Event = HTTPDeferredRequest
    let root: DocumentRoot?
    let cache: PageCache
    let clock: SedaClock
    /// The asynchronous reads (nil without a document root).
    let disk: FileDiskReader?

    func handle(_ batch: inout EventBatch<HTTPDeferredRequest>) throws {
        for i in 0..<batch.count {
            guard let request = batch.take(i) else { continue }
            // nil: the file stage reads it and replies.
            guard let result = load(request) else { continue }
            request.result = result
            request.reply()
        }
    }

    /// The request's result, or nil when the file stage took it over.
    func load(_ request: HTTPDeferredRequest) -> HTTPDeferredRequest.Result? {
        guard let root else { return .status(.notFound) }
        return request.path.withUnsafeBytes { key -> HTTPDeferredRequest.Result? in
            let stale = request.stalePage
            switch root.open(key) {
            case .file(let fd, let st, let contentType):
                let identity = FileIdentity(st)
                if let stale, stale.identity == identity {
                    close(fd)
                    cache.revalidated(key, page: stale, now: clock.now)
                    return .page(stale)
                }
                let size = Int(st.st_size)
                if size > cache.maxEntryBytes {
                    if stale != nil { cache.remove(key) }
                    return .file(
                        HTTPFileBody(adopting: fd, size: Int64(size)), contentType: contentType,
                        identity: identity)
                }
                if size > 0, let disk {
                    let job = FileReadJob.Pending(
                        request: request, descriptor: fd, body: HTTPBuffer(count: size), contentType: contentType,
                        identity: identity, cache: cache, clock: clock)
                    if disk.start(job) { return nil }
                }
                let read = readWholeFile(fd, size: size)
                close(fd)
                switch read {
                case .success(let body):
                    let page = CachedPage(body: body, contentType: contentType, identity: identity)
                    cache.insert(key, page: page, now: clock.now)
                    return .page(page)
                case .failure:
                    if stale != nil { cache.remove(key) }
                    return .status(.internalServerError)
                }
            case .redirectToDirectory:
                if stale != nil { cache.remove(key) }
                return .redirectToDirectory
            case .notFound:
                if stale != nil { cache.remove(key) }
                return .status(.notFound)
            case .forbidden:
                if stale != nil { cache.remove(key) }
                return .status(.forbidden)
            case .failed:
                if stale != nil { cache.remove(key) }
                return .status(.internalServerError)
            }
        }
    }
}
