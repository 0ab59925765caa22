import Glibc
import Seda

/// The asynchronous half of a cache miss: the file-read stage opened the
/// file (under the document root) and found it cacheable; its descriptor is
/// adopted by the site's ``FileStage`` and read whole into the page's buffer
/// (``HTTPServerConfiguration/diskReadBytes`` per request, all in flight at
/// once). The completions arrive on a dedicated stage running
/// ``FileReadCompletion``; the last of a file's reads closes the file,
/// builds the ``CachedPage``, inserts it into the cache and replies, or
/// replies 500 when a read failed or came back short (the file shrank), 503
/// when the file stage refused a read for being full (load shedding).
///
/// Thread rules: ``start(_:)`` on the file-read stage's threads, the
/// completions on the done stage's thread; both may block (dedicated pools).
final class FileDiskReader: Sendable {
    let stage: FileStage
    let sink: FileEventStage
    let readBytes: Int
    /// Shared with the done stage's ``FileReadCompletion``.
    let jobs: FileReadJobs

    init(stage: FileStage, sink: FileEventStage, readBytes: Int, jobs: FileReadJobs) {
        self.stage = stage
        self.sink = sink
        self.readBytes = readBytes
        self.jobs = jobs
    }

    /// Adopts the job's descriptor and makes its reads. False when the file
    /// stage refused the descriptor (destroyed, out of memory): the caller
    /// still owns it and answers the request itself. True: the job replies.
    func start(_ job: FileReadJob.Pending) -> Bool {
        let file: AsyncFile
        do {
            file = try stage.adopt(descriptor: job.descriptor)
        } catch {
            return false
        }
        let size = job.body.count
        let reads = (size + readBytes - 1) / readBytes
        let id = jobs.add(FileReadJob(pending: job, file: file), reads: reads)
        let base = UnsafeMutableRawPointer(mutating: job.body.baseAddress)
        for k in 0..<reads {
            let offset = k * readBytes
            let count = min(readBytes, size - offset)
            do throws(SedaError) {
                // The job holds the body until every read has completed.
                try file.readUnsafe(
                    at: UInt64(offset), into: UnsafeMutableRawBufferPointer(start: base + offset, count: count),
                    sink: .stage(sink), tag: id)
            } catch {
                // Refused: this read and the ones not made count as failed.
                let status: HTTPStatus = error == .full ? .serviceUnavailable : .internalServerError
                if let last = jobs.lastResult(id, count: reads - k, failure: status) {
                    last.job.finish(failure: last.failure)
                }
                break
            }
        }
        return true
    }
}

/// A file being read for the cache: what the reply needs, and the open file.
final class FileReadJob: Sendable {
    /// What the file-read stage hands over (the descriptor not yet adopted).
    struct Pending {
        let request: HTTPDeferredRequest
        let descriptor: Int32
        /// The page's body, as large as the file (filled by the reads).
        let body: HTTPBuffer
        let contentType: StaticString
        let identity: FileIdentity
        let cache: PageCache
        let clock: SedaClock
    }

    let request: HTTPDeferredRequest
    let file: AsyncFile
    let body: HTTPBuffer
    let contentType: StaticString
    let identity: FileIdentity
    let cache: PageCache
    let clock: SedaClock

    init(pending p: Pending, file: AsyncFile) {
        request = p.request
        self.file = file
        body = p.body
        contentType = p.contentType
        identity = p.identity
        cache = p.cache
        clock = p.clock
    }

    /// Every read is done: closes the file, fills in the result (`failure`
    /// nil: the page, cached) and replies.
    func finish(failure: HTTPStatus?) {
        closeFile()
        request.path.withUnsafeBytes { key in
            if let failure {
                if request.stalePage != nil { cache.remove(key) }
                request.result = .status(failure)
            } else {
                let page = CachedPage(body: body, contentType: contentType, identity: identity)
                cache.insert(key, page: page, now: clock.now)
                request.result = .page(page)
            }
        }
        request.reply()
    }

    /// Requests the close (its completion, tag 0, is ignored). While the
    /// file stage is full the close is retried for a while (completions
    /// free room on their own); a stage destroyed meanwhile closed the file.
    private func closeFile() {
        for _ in 0..<1000 {
            do {
                try file.close(sink: .callback { _ in }, tag: 0)
                return
            } catch SedaError.full {
                usleep(1000)
            } catch {
                return  // closed by the stage's destroy, or closing already
            }
        }
    }
}

/// The reads in flight, by tag: a job stays here until its last read
/// completes. Thread rules: any thread.
final class FileReadJobs: Sendable {
    private struct Entry {
        let job: FileReadJob
        var remaining: Int
        /// The first failure's answer.
        var failure: HTTPStatus?
    }

    private let state = Lock<(next: UInt64, entries: [UInt64: Entry])>((1, [:]))

    /// Registers a job with `reads` reads to come; returns its tag (never 0).
    func add(_ job: FileReadJob, reads: Int) -> UInt64 {
        state.withLock { s in
            let id = s.next
            s.next += 1
            s.entries[id] = Entry(job: job, remaining: reads, failure: nil)
            return id
        }
    }

    /// Counts `count` reads of job `id` done (`failure`: how one of them
    /// failed); returns the job, and its first failure, when that was the last.
    func lastResult(_ id: UInt64, count: Int = 1, failure: HTTPStatus?) -> (job: FileReadJob, failure: HTTPStatus?)? {
        state.withLock { s -> (job: FileReadJob, failure: HTTPStatus?)? in
            guard var e = s.entries[id] else { return nil }
            e.remaining -= count
            if e.failure == nil { e.failure = failure }
            if e.remaining > 0 {
                s.entries[id] = e
                return nil
            }
            s.entries[id] = nil
            return (e.job, e.failure)
        }
    }

    /// Jobs still waiting for reads (tests, teardown).
    var count: Int { state.withLock { $0.entries.count } }

    /// Forgets every job (the done stage is going: their completions will
    /// never come).
    func removeAll() { state.withLock { $0.entries.removeAll() } }
}

/// The done stage's handler: counts each read's completion against its job
/// and finishes the job on its last one.
struct FileReadCompletion: FileEventHandler {
    let jobs: FileReadJobs

    func handle(_ batch: inout FileEventBatch) throws {
        batch.forEach { e in
            guard e.operation == .read, e.tag != 0 else { return }
            // A short read: the file shrank since its stat.
            let failed = e.error != nil || e.count != e.requestedCount
            if let last = jobs.lastResult(e.tag, failure: failed ? .internalServerError : nil) {
                last.job.finish(failure: last.failure)
            }
        }
    }

    func tearDown() { jobs.removeAll() }
}
