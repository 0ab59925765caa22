import Glibc
import Seda

/// The file-read stage (Haboob's "cache miss" path): opens the file a
/// request names under the document root, reads it with pread into a page
/// (inserted into the page cache) or keeps it open for sendfile when it is
/// too large to cache, and sends the request back. A page to revalidate is
/// compared with the file's identity (size, mtime, inode) and reused when
/// unchanged. Runs on a dedicated pool: every call here may block on the
/// disk. (The async-disk work swaps io_uring or libaio in behind this same
/// stage.)
struct FileReadStage: EventHandler {
    typealias Event = HTTPDeferredRequest
    let root: DocumentRoot?
    let cache: PageCache
    let clock: SedaClock

    func handle(_ batch: inout EventBatch<HTTPDeferredRequest>) throws {
        for i in 0..<batch.count {
            guard let request = batch.take(i) else { continue }
            request.result = load(request)
            request.reply()
        }
    }

    func load(_ request: HTTPDeferredRequest) -> HTTPDeferredRequest.Result {
        guard let root else { return .status(.notFound) }
        return request.path.withUnsafeBytes { key -> HTTPDeferredRequest.Result in
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
