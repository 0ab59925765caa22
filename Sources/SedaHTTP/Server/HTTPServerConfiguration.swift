import Seda

/// How the server's request path behaves: limits, the site, the page
/// cache and the stages behind it. Defaults suit the built-in site.
public struct HTTPServerConfiguration: Sendable, Equatable {
    /// What clients may send.
    public var limits = HTTPLimits()
    /// The directory to serve; nil serves the built-in default site (the
    /// 8 KB page at `/` and `/index.html`, `/bottleneck`, `/status`, `/metrics`).
    public var documentRoot: String? = nil
    /// How paths resolve under the document root (nil: openat2 beneath the
    /// root where the kernel has it, else no symbolic links at all).
    public var rootResolution: DocumentRoot.Resolution? = nil
    /// Bytes the page cache may hold.
    public var cacheBytes = 64 << 20
    /// Files up to this size are cached; larger ones go out with sendfile.
    public var maxCachedFileBytes = 1 << 20
    /// How long a cached page is served before its file is checked again.
    public var revalidateAfter: Duration = .seconds(1)
    /// Threads of the file-read stage (opening and stat: they block).
    public var fileReadThreads = 4
    /// The engine of the file stage that reads cache misses
    /// (``DiskEngine/automatic``: `SEDA_DISK`, else io_uring; files are read
    /// buffered, through the page cache, on every engine).
    public var diskEngine: DiskEngine = .automatic
    /// The largest read request: a cached file larger than this is read with
    /// several requests in flight at once.
    public var diskReadBytes = 256 << 10
    /// Threads of the `/bottleneck` stage.
    public var bottleneckThreads = 2
    /// CPU time `/bottleneck` burns per request.
    public var bottleneckWork: Duration = .milliseconds(1)

    /// What `/bottleneck` completes per second with every thread busy and
    /// on a CPU of its own (threads ÷ work; `.infinity` for no work): a
    /// response-time controller's starting rate (``ResponseTimeControllerOptions/initialRate``).
    /// Unlimited at the start, the controller would admit a cold start's
    /// first burst (every connection's first request at once) whole, before
    /// it has measured anything: at 1,000 connections a second of queue.
    /// Sharing the CPU, the stage does less; the controller finds out in a
    /// window or two.
    public var nominalBottleneckCapacity: Double {
        let ns = bottleneckWork.saturatingNanoseconds
        return ns <= 0 ? .infinity : Double(bottleneckThreads) * 1e9 / Double(ns)
    }
    /// Retry-After of a 503 sent when a stage refuses work (load shedding).
    public var retryAfterSeconds = 1
    /// The built-in endpoints' paths (nil: off). On by default for the
    /// built-in site; with a document root they would shadow files, so
    /// ``HTTPServerConfiguration/init()`` leaves them on and
    /// ``forDirectory(_:)`` turns them off.
    public var statusPath: String? = "/status"
    public var metricsPath: String? = "/metrics"
    public var bottleneckPath: String? = "/bottleneck"
    /// Stage names (the runtime's registry, the profiler's graph).
    public var fileStageName = "http-file"
    public var bottleneckStageName = "http-bottleneck"
    public var statusStageName = "http-status"
    /// The file stage (its pool is "<name>.pool"; at most 40 bytes) and the
    /// stage its completions go to (one dedicated thread), made only with a
    /// document root.
    public var diskStageName = "http-disk"
    public var fileDoneStageName = "http-file-done"

    /// The built-in site with every endpoint.
    public init() {}

    /// A document root, without the built-in endpoints.
    public static func forDirectory(_ path: String) -> HTTPServerConfiguration {
        var c = HTTPServerConfiguration()
        c.documentRoot = path
        c.statusPath = nil
        c.metricsPath = nil
        c.bottleneckPath = nil
        return c
    }

    /// Throws naming the first bad value.
    public func validate() throws(HTTPConfigurationError) {
        try limits.validate()
        func check(_ ok: Bool, _ what: String) throws(HTTPConfigurationError) {
            if !ok { throw HTTPConfigurationError(message: what) }
        }
        try check(cacheBytes >= 0, "cacheBytes \(cacheBytes) is negative")
        try check(maxCachedFileBytes >= 0, "maxCachedFileBytes \(maxCachedFileBytes) is negative")
        try check(revalidateAfter >= .zero, "revalidateAfter is negative")
        try check(fileReadThreads >= 1, "fileReadThreads \(fileReadThreads) is below 1")
        try check(
            diskReadBytes >= 1 && diskReadBytes <= 1 << 30, "diskReadBytes \(diskReadBytes) is not in 1...\(1 << 30)")
        try check(bottleneckThreads >= 1, "bottleneckThreads \(bottleneckThreads) is below 1")
        try check(bottleneckWork >= .zero, "bottleneckWork is negative")
        try check(retryAfterSeconds >= 0, "retryAfterSeconds \(retryAfterSeconds) is negative")
        for p in [statusPath, metricsPath, bottleneckPath] {
            if let p { try check(RequestPath.normalized(p) == p, "endpoint path '\(p)' is not a normalised path") }
        }
    }
}
