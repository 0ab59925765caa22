import Seda

/// What every worker's request processor shares: the configuration, the
/// document root (or the built-in site), the page cache, the built-in page,
/// and the sinks of the stages behind the request path (file read,
/// `/bottleneck`, status). Made once per server by ``install(in:configuration:)``.
///
/// Thread rules: any thread.
public final class HTTPSite: Sendable {
    public let configuration: HTTPServerConfiguration
    /// The document root; nil for the built-in site.
    public let root: DocumentRoot?
    public let cache: PageCache
    /// The seed's 8 KB page (`/` and `/index.html` of the built-in site,
    /// the answer of `/bottleneck`).
    public let defaultPage: CachedPage
    /// The clock the page cache's revalidation reads (the runtime's).
    public let clock: SedaClock
    /// The file-read stage.
    public let fileStage: Sink<HTTPDeferredRequest>
    /// The file stage reading cache misses (nil for the built-in site). It
    /// is destroyed when the last of the site and the file-read stage's
    /// handler (torn down by the runtime's shutdown) lets go of it, and it
    /// keeps the runtime alive meanwhile: shut the runtime down.
    public let disk: FileStage?
    /// The `/bottleneck` stage (nil when the endpoint is off).
    public let bottleneckStage: Sink<HTTPDeferredRequest>?
    /// The `/status` and `/metrics` stage (nil when both are off).
    public let statusStage: Sink<HTTPDeferredRequest>?
    let counters: HTTPCounterSet

    private init(
        configuration: HTTPServerConfiguration, root: DocumentRoot?, cache: PageCache,
        defaultPage: CachedPage, clock: SedaClock, fileStage: Sink<HTTPDeferredRequest>, disk: FileStage?,
        bottleneckStage: Sink<HTTPDeferredRequest>?, statusStage: Sink<HTTPDeferredRequest>?,
        counters: HTTPCounterSet
    ) {
        self.configuration = configuration
        self.root = root
        self.cache = cache
        self.defaultPage = defaultPage
        self.clock = clock
        self.fileStage = fileStage
        self.disk = disk
        self.bottleneckStage = bottleneckStage
        self.statusStage = statusStage
        self.counters = counters
    }

    /// Checks `configuration`, opens the document root, fills the cache
    /// with the built-in pages (no document root), and adds the stages
    /// behind the request path to `runtime`: the file-read stage (a
    /// dedicated pool opening files) with, for a document root, the file
    /// stage reading them (``HTTPServerConfiguration/diskEngine``) and the
    /// stage its completions go to, `/bottleneck` (a dedicated pool burning
    /// CPU) and the status stage (one thread), under the configured names.
    /// Throws ``HTTPConfigurationError`` or the runtime's error (a taken name).
    ///
    /// Load conditioning: `fileAdmission` and `bottleneckAdmission` guard
    /// those stages' sinks (e.g. a ``ResponseTimeController`` on
    /// `/bottleneck`); what they refuse is answered 503 with Retry-After.
    public static func install(
        in runtime: Runtime, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
        fileAdmission: (any AdmissionController<HTTPDeferredRequest>)? = nil,
        bottleneckAdmission: (any AdmissionController<HTTPDeferredRequest>)? = nil
    ) throws -> HTTPSite {
        try configuration.validate()
        let root = try configuration.documentRoot.map { path throws(HTTPConfigurationError) in
            try DocumentRoot(path: path, resolution: configuration.rootResolution)
        }
        let cache = PageCache(
            capacityBytes: configuration.cacheBytes, maxEntryBytes: configuration.maxCachedFileBytes,
            revalidateAfter: configuration.revalidateAfter)
        let page = DefaultSite.page(modified: HTTPDate.nowSeconds())
        if root == nil {
            let now = runtime.clock.now
            cache.insert("/", page: page, now: now, pinned: true)
            cache.insert("/index.html", page: page, now: now, pinned: true)
        }
        let counters = HTTPCounterSet(cache: cache)
        var reader: FileDiskReader? = nil
        if root != nil {
            let disk = try FileStage(
                runtime: runtime, name: configuration.diskStageName, engine: configuration.diskEngine)
            let jobs = FileReadJobs()
            let done = try runtime.addFileEventStage(
                configuration.fileDoneStageName,
                options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 16),
                handler: FileReadCompletion(jobs: jobs))
            reader = FileDiskReader(stage: disk, sink: done, readBytes: configuration.diskReadBytes, jobs: jobs)
        }
        let file = try runtime.addStage(
            configuration.fileStageName,
            handler: FileReadStage(root: root, cache: cache, clock: runtime.clock, disk: reader),
            options: StageOptions(threadManager: .dedicated(threads: configuration.fileReadThreads), batchSize: 16),
            admission: fileAdmission)
        var bottleneck: Sink<HTTPDeferredRequest>? = nil
        if configuration.bottleneckPath != nil {
            bottleneck = try runtime.addStage(
                configuration.bottleneckStageName,
                handler: BottleneckStage(page: page, work: configuration.bottleneckWork),
                options: StageOptions(
                    threadManager: .dedicated(threads: configuration.bottleneckThreads),
                    batchSize: 1),
                admission: bottleneckAdmission)
        }
        var status: Sink<HTTPDeferredRequest>? = nil
        if configuration.statusPath != nil || configuration.metricsPath != nil {
            status = try runtime.addStage(
                configuration.statusStageName,
                handler: StatusStage(counters: counters),
                options: StageOptions(threadManager: .dedicated(threads: 1), batchSize: 8, queueCapacity: 256))
        }
        return HTTPSite(
            configuration: configuration, root: root, cache: cache, defaultPage: page,
            clock: runtime.clock, fileStage: file, disk: reader?.stage, bottleneckStage: bottleneck,
            statusStage: status, counters: counters)
    }

    /// Every processor's counters summed.
    public var counterTotals: HTTPCounters.Snapshot { counters.totals }
}

/// The counters of every processor of a site, for the status page.
final class HTTPCounterSet: Sendable {
    let cache: PageCache
    private let all = Lock<[HTTPCounters]>([])

    init(cache: PageCache) { self.cache = cache }

    func register(_ c: HTTPCounters) { all.withLock { $0.append(c) } }

    var totals: HTTPCounters.Snapshot {
        all.withLock { $0 }.reduce(HTTPCounters.Snapshot()) { $0 + $1.snapshot }
    }
}
