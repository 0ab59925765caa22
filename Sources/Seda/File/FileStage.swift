import CSedaCore
import Glibc

/// A file stage's settings (`seda_file_stage_options_t`). Zero values take
/// the C core's defaults.
public struct FileStageOptions: Sendable, Equatable {
    /// Whether io_uring registers the buffer pool with its ring (reads and
    /// writes into pooled buffers then skip pinning pages per request).
    public enum BufferRegistration: Sendable, Equatable {
        /// If the kernel allows it (`RLIMIT_MEMLOCK`), else an info line in the log.
        case ifAllowed
        /// Register, with a warning in the log if refused.
        case always
        /// Never.
        case never
    }

    /// Requests in the kernel at once (the ring's or AIO context's size;
    /// more wait in the stage). 0: 256. At most 4096.
    public var queueDepth: Int = 0
    /// Requests accepted and not yet completed, at most; past it a request
    /// throws ``SedaError/full``. 0: 4096.
    public var maxPending: Int = 0
    /// The pool's threads at start (opens and closes; every request on the
    /// threads engine). 0: 1, or 4 on the threads engine.
    public var threads: Int = 0
    /// The pool's upper bound for ``FileStage/setThreads(_:)``. 0: max(threads, 64).
    public var maxThreads: Int = 0
    /// The aligned buffer pool's arena in bytes (0: 16 MiB); buffers beyond
    /// it come from the heap, aligned too.
    public var bufferPoolBytes: Int = 0
    /// io_uring only.
    public var registerBuffers: BufferRegistration = .ifAllowed
    /// The home worker: the shared thread that submits and reaps (nil: the
    /// runtime spreads its file stages over its shared threads).
    public var homeThread: Int? = nil

    public init(
        queueDepth: Int = 0, maxPending: Int = 0, threads: Int = 0, maxThreads: Int = 0,
        bufferPoolBytes: Int = 0, registerBuffers: BufferRegistration = .ifAllowed, homeThread: Int? = nil
    ) {
        self.queueDepth = queueDepth
        self.maxPending = maxPending
        self.threads = threads
        self.maxThreads = maxThreads
        self.bufferPoolBytes = bufferPoolBytes
        self.registerBuffers = registerBuffers
        self.homeThread = homeThread
    }
}

/// A file stage's counters (`seda_file_stage_stats_t`), a snapshot.
public struct FileStageStatistics: Sendable, Equatable {
    /// Requests accepted (opens included).
    public var accepted: UInt64
    /// Completions produced, whatever their result.
    public var completed: UInt64
    /// ... of which failed (cancelled ones included).
    public var failed: UInt64
    /// ... of which cancelled (`ECANCELED`).
    public var canceled: UInt64
    public var bytesRead: UInt64
    public var bytesWritten: UInt64
    /// `io_uring_enter` / `io_submit` calls made.
    public var submitCalls: UInt64
    /// Accepted, not yet completed, now.
    public var pending: UInt64
    /// Completions whose sink was gone.
    public var undeliverable: UInt64
    /// Opens whose `O_DIRECT` the file system refused (opened buffered).
    public var directFallbacks: UInt64
    /// Completion events not yet released.
    public var eventsOutstanding: UInt64
    /// Pooled buffers allocated and not freed.
    public var buffersOutstanding: UInt64
    /// Files opened and not yet closed.
    public var filesOpen: UInt64

    init(_ s: seda_file_stage_stats_t) {
        accepted = s.accepted
        completed = s.completed
        failed = s.failed
        canceled = s.canceled
        bytesRead = s.bytes_read
        bytesWritten = s.bytes_written
        submitCalls = s.submit_calls
        pending = s.pending
        undeliverable = s.undeliverable
        directFallbacks = s.direct_fallbacks
        eventsOutstanding = s.events_outstanding
        buffersOutstanding = s.buffers_outstanding
        filesOpen = s.files_open
    }
}

/// How a file is opened for ``FileStage/open(_:access:options:permissions:sink:tag:)``.
public enum FileAccess: Sendable, Equatable {
    case readOnly
    case writeOnly
    case readWrite

    var flags: Int32 {
        switch self {
        case .readOnly: O_RDONLY
        case .writeOnly: O_WRONLY
        case .readWrite: O_RDWR
        }
    }
}

/// `open(2)` flags a file stage takes (`O_APPEND` is not among them:
/// requests name their offsets).
public struct FileOpenOptions: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `O_CREAT`: create the file if it does not exist.
    public static let create = FileOpenOptions(rawValue: O_CREAT)
    /// `O_EXCL` (with ``create``): fail with `EEXIST` if it exists.
    public static let exclusive = FileOpenOptions(rawValue: O_EXCL)
    /// `O_TRUNC`: empty it.
    public static let truncate = FileOpenOptions(rawValue: O_TRUNC)
    /// `O_DIRECT`: bypass the page cache; requests must then be aligned
    /// (``AsyncFile/alignment``; pooled buffers are). A file system that
    /// refuses it gets a buffered file, with a warning in the log
    /// (``AsyncFile/isDirect`` says which).
    public static let direct = FileOpenOptions(rawValue: 0o40000)
    /// `O_NOATIME`.
    public static let noAccessTime = FileOpenOptions(rawValue: 0o1000000)
    /// `O_SYNC`: each write reaches the device before it completes.
    public static let sync = FileOpenOptions(rawValue: O_SYNC)
    /// `O_DSYNC`: each write's data reaches the device before it completes.
    public static let dataSync = FileOpenOptions(rawValue: O_DSYNC)
}

/// Sandstorm's `AFile` stage: asynchronous disk I/O on a ``Runtime``. Open,
/// read, write, flush and close are requests made to it (``open(_:access:options:permissions:sink:tag:)``,
/// then the ``AsyncFile`` methods); each request's completion, bytes or an
/// error, arrives later as one ``FileEvent`` on the ``FileSink`` the request
/// named. Reads and writes name their offsets, and any number may be in
/// flight on one file.
///
/// The ``DiskEngine`` is chosen at creation (the `engine` argument; with
/// ``DiskEngine/automatic`` the `SEDA_DISK` environment variable, else
/// io_uring), falling back with a logged warning when the kernel refuses it.
/// The stage belongs to a home worker, a shared thread of the runtime that
/// submits its io_uring and libaio requests and reaps their completions: a
/// ``FileEventStage`` on the shared threads usually runs them next on that
/// same thread.
///
/// Lifetime. The C stage is destroyed by ``destroy()``, or by the deinit of
/// the last reference: requests not yet in the kernel complete with
/// `ECANCELED`, those in it are waited for, completions go to their sinks,
/// files still open are closed (their ``AsyncFile``s then refuse requests
/// with ``SedaError/closed``). A runtime shut down first stops the stage with
/// it (``Runtime/shutdown(_:timeout:)`` with `.drain` waits for requests in
/// flight and delivers their completions); the stage is then freed the same
/// way. The stage keeps its runtime alive.
///
/// Thread rules: every method may be called from any thread, handlers
/// included, except ``destroy()``, which waits for the stage's threads and
/// its home worker and so throws ``SedaError/wouldDeadlock`` on a shared
/// thread of the runtime and must not be called from a handler of a
/// dedicated stage either. A deinit on a shared thread (a handler held the
/// last reference) or in a ``FileSink/callback(_:)`` destroys the stage on
/// a thread of its own.
public final class FileStage: @unchecked Sendable {
    // @unchecked: the C file stage is safe for concurrent use; the handle
    // never changes; `destroyed` is atomic.
    let pointer: OpaquePointer
    /// The runtime, kept alive while the stage may use it.
    public let runtime: Runtime
    /// The stage's name (its pool stage is "<name>.pool" in the runtime's statistics).
    public let name: String
    private let destroyed = AtomicInt()

    /// Creates a file stage on `runtime`. `name` names its stages (1 to 40
    /// bytes, unique in the runtime). Throws ``SedaError/invalidConfiguration(_:)``
    /// (a bad name or option), ``SedaError/alreadyExists`` (a stage of that
    /// name exists), ``SedaError/closed`` (runtime shut down), or the last
    /// engine's error. Any thread but a handler on the runtime's shared threads.
    public init(
        runtime: Runtime, name: String, engine: DiskEngine = .automatic,
        options: FileStageOptions = FileStageOptions()
    ) throws(SedaError) {
        guard !name.isEmpty, name.utf8.count <= 40 else {
            throw .invalidConfiguration("file stage name '\(name)' is \(name.utf8.count) bytes: it must be 1 to 40")
        }
        func check(_ v: Int, _ what: String, max: Int = Int(UInt32.max)) throws(SedaError) -> UInt32 {
            guard v >= 0, v <= max else {
                throw .invalidConfiguration("file stage '\(name)': \(what) \(v) is not in 0...\(max)")
            }
            return UInt32(v)
        }
        var o = seda_file_stage_options_t()
        o.engine = engine.cValue
        o.queue_depth = try check(options.queueDepth, "queueDepth", max: 4096)
        o.max_pending = try check(options.maxPending, "maxPending")
        o.threads = try check(options.threads, "threads")
        o.max_threads = try check(options.maxThreads, "maxThreads")
        if options.maxThreads != 0 && options.maxThreads < options.threads {
            throw .invalidConfiguration(
                "file stage '\(name)': maxThreads \(options.maxThreads) is below threads \(options.threads)")
        }
        guard options.bufferPoolBytes >= 0 else {
            throw .invalidConfiguration("file stage '\(name)': bufferPoolBytes \(options.bufferPoolBytes) is negative")
        }
        o.buffer_pool_bytes = options.bufferPoolBytes
        switch options.registerBuffers {
        case .ifAllowed: o.register_buffers = 0
        case .always: o.register_buffers = 1
        case .never: o.register_buffers = -1
        }
        if let t = options.homeThread {
            guard t >= 0, t < runtime.cpuThreads else {
                throw .invalidConfiguration(
                    "file stage '\(name)': homeThread \(t) is not a shared thread (0..<\(runtime.cpuThreads))")
            }
            o.bind_to_thread = 1
            o.thread_index = UInt32(t)
        }
        var fs: OpaquePointer?
        let r = name.withCString { cname in
            o.name = cname
            // Creation may log (an engine fallback) through the runtime's hook.
            return withExtendedLifetime(runtime) { seda_file_stage_create(runtime.handle, &o, &fs) }
        }
        _ = try SedaError.check(r)
        // Our own reference: the handle stays readable after the destroy.
        seda_file_stage_retain(fs!)
        pointer = fs!
        self.runtime = runtime
        self.name = name
    }

    deinit {
        if destroyed.load() == 0 {
            if seda_runtime_thread_index(runtime.handle) >= 0 || FileCallbackThread.isCurrent {
                // On a shared thread (or in a callback sink, on one of the
                // stage's own threads) the destroy would wait for this very
                // thread: finish on a thread of its own.
                let finish = FileStageFinish(pointer: pointer, runtime: runtime)
                do throws(SedaError) {
                    try SedaThread.detached(name: "seda-file-free") { finish.run() }
                    return
                } catch {
                    runtime.logger.error(
                        "file stage released on a shared thread and no thread could destroy it: it is leaked",
                        metadata: ["stage": "\(name)", "error": "\(error)"])
                    return
                }
            }
            seda_file_stage_destroy(pointer)
        }
        seda_file_stage_release(pointer)
    }

    /// Destroys the stage now (see the type's lifetime rules). Destroying
    /// twice does nothing. Throws ``SedaError/wouldDeadlock`` on a shared
    /// thread of the runtime or in a ``FileSink/callback(_:)`` (do it from
    /// another thread).
    public func destroy() throws(SedaError) {
        if seda_runtime_thread_index(runtime.handle) >= 0 || FileCallbackThread.isCurrent { throw .wouldDeadlock }
        if destroyed.add(1) == 1 { seda_file_stage_destroy(pointer) }
    }

    /// The engine serving the stage, after any fallback (never ``DiskEngine/automatic``).
    public var engine: DiskEngine { DiskEngine(cValue: seda_file_stage_engine(pointer)) ?? .threads }

    /// The home worker: the shared thread that submits and reaps.
    public var homeThread: Int { Int(seda_file_stage_thread(pointer)) }

    /// A snapshot of the stage's counters.
    public var statistics: FileStageStatistics {
        var s = seda_file_stage_stats_t()
        seda_file_stage_stats(pointer, &s)
        return FileStageStatistics(s)
    }

    /// Resizes the thread pool (1...``FileStageOptions/maxThreads``) while
    /// the stage runs.
    public func setThreads(_ n: Int) throws(SedaError) {
        guard n >= 1, n <= Int(UInt32.max) else { throw .invalidArgument }
        _ = try SedaError.check(seda_file_stage_set_threads(pointer, UInt32(n)))
    }

    /// A buffer of `count` bytes (1 byte to 1 GiB) from the stage's aligned
    /// pool. Its contents are undefined. Throws ``SedaError/outOfMemory``,
    /// or ``SedaError/invalidArgument`` for a bad count.
    public func allocateBuffer(count: Int) throws(SedaError) -> FileBuffer {
        guard count >= 1, count <= 1 << 30 else { throw .invalidArgument }
        guard let p = seda_file_buffer_alloc(pointer, count) else { throw .outOfMemory }
        return FileBuffer(adopting: p, count: count, stage: pointer)
    }

    /// Opens `path`. The ``FileOperation/open`` completion, on `sink`,
    /// carries the file (``FileEvent/file``) or the error (``SedaError/notFound``,
    /// `.system(errno: EACCES)`, `.system(errno: EISDIR)`, ``SedaError/alreadyExists``...).
    /// `permissions` apply to a created file. Opening runs on the stage's
    /// pool (`open(2)` may block on metadata). Throws, and then delivers
    /// nothing, when the request is refused: ``SedaError/full`` (too many
    /// requests pending: retry later), ``SedaError/closed`` (stage destroyed
    /// or runtime stopping), ``SedaError/invalidArgument``, ``SedaError/outOfMemory``.
    public func open(
        _ path: String, access: FileAccess = .readOnly, options: FileOpenOptions = [],
        permissions: mode_t = 0o644, sink: FileSink, tag: UInt64 = 0
    ) throws(SedaError) {
        let flags = access.flags | options.rawValue
        let r = sink.withCSink(tag: tag) { s, user in
            path.withCString { seda_file_open(pointer, $0, flags, permissions, s, user) }
        }
        _ = try SedaError.check(r)
    }

    /// Makes the `nth` (1-based) matching request from now on, and the
    /// `count - 1` after it, fail with `errno` where the engine would hand
    /// it to the kernel (tests of error paths: `EIO`, `ENOSPC`...).
    /// `operations` empty disarms.
    package func injectFault(_ operations: [FileOperation], nth: UInt64, count: UInt32 = 1, errno: Int32)
        throws(SedaError)
    {
        var mask: UInt32 = 0
        for op in operations {
            let bit: UInt32
            switch op {
            case .open: bit = SEDA_FILE_OPEN.rawValue
            case .read: bit = SEDA_FILE_READ.rawValue
            case .write: bit = SEDA_FILE_WRITE.rawValue
            case .flush: bit = SEDA_FILE_FSYNC.rawValue
            case .flushData: bit = SEDA_FILE_FDATASYNC.rawValue
            case .close: bit = SEDA_FILE_CLOSE.rawValue
            }
            mask |= 1 << bit
        }
        _ = try SedaError.check(seda_file_stage_inject_fault(pointer, mask, nth, count, errno))
    }
}

/// A file stage released on a shared thread, destroyed on a thread of its own.
private struct FileStageFinish: @unchecked Sendable {
    // @unchecked: the C handle may be destroyed from any thread; the runtime is Sendable.
    let pointer: OpaquePointer
    let runtime: Runtime

    func run() {
        withExtendedLifetime(runtime) {
            seda_file_stage_destroy(pointer)
            seda_file_stage_release(pointer)
        }
    }
}
