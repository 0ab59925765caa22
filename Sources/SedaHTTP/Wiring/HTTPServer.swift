import Glibc
import Seda
import Synchronization

/// seda-httpd's server: Haboob's stage graph on a Seda ``Runtime``, wired to
/// the socket layer (docs/design/http.md).
///
/// Per shared thread *i* (a worker): the read stage's replica `http-read-i`
/// (the socket layer delivers the packets of the connections thread *i*
/// accepted), the reply stage `http-reply-i`, the control stage
/// `http-control-i` (header timers, the drain), and with the staged
/// pipeline the parse stage `http-parse-i`, all bound to thread *i*, so a
/// connection never leaves its thread. Shared: the site's file-read,
/// `/bottleneck` and status stages (dedicated pools) and one timer facility.
///
/// Timeouts: a request's header must be complete within
/// ``HTTPLimits/headerTimeout`` of its first packet (else 408 and close, a
/// slowloris's fate); a connection idle between requests closes after
/// ``HTTPLimits/keepAliveTimeout`` (the socket layer's idle timeout, also
/// for a client that never sends a byte).
///
/// Thread rules: any thread; ``shutdown(gracePeriod:)`` once.
public final class HTTPServer: Sendable {
    /// The runtime the stages run on (the caller's, shut down by the caller).
    public let runtime: Runtime
    /// The request path's shared part.
    public let site: HTTPSite
    /// Fused or staged.
    public let pipeline: HTTPPipeline
    let workers: [HTTPWorker]
    let controls: [Sink<HTTPControlEvent>]
    let timers: Timers
    /// The read stage (one replica per shared thread).
    public let readStage: IOStage
    let listener: Listener
    /// The port it listens on (the kernel's choice for port 0).
    public let port: UInt16
    private let stopping = Atomic<Bool>(false)

    /// Installs the site and the per-worker stages on `runtime` and starts
    /// listening. Throws ``HTTPConfigurationError`` (a bad configuration),
    /// ``SedaError`` (a taken stage name, the address in use, a bad address).
    public init(
        runtime: Runtime, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
        options: HTTPServerOptions = HTTPServerOptions()
    ) throws {
        self.runtime = runtime
        pipeline = options.pipeline
        site = try HTTPSite.install(
            in: runtime, configuration: configuration, fileAdmission: options.fileAdmission,
            bottleneckAdmission: options.bottleneckAdmission)
        let timers = try Timers(clock: runtime.clock, resolution: options.timerResolution)
        self.timers = timers
        var workers: [HTTPWorker] = []
        var controls: [Sink<HTTPControlEvent>] = []
        var parses: [Sink<HTTPPacket>?] = []
        for i in 0..<runtime.cpuThreads {
            let worker = HTTPWorker(
                index: i, site: site, clock: runtime.clock, timers: timers, accessLog: options.accessLog)
            let reply = try runtime.addStage(
                "http-reply-\(i)", handler: HTTPReplyHandler(worker: worker),
                options: bound(i, StageOptions(queueCapacity: 4096)))
            let control = try runtime.addStage(
                "http-control-\(i)", handler: HTTPControlHandler(worker: worker),
                options: bound(i, StageOptions(queueCapacity: 4096)))
            worker.attach(processor: HTTPRequestProcessor(site: site, replyTo: reply), control: control)
            if options.pipeline == .staged {
                parses.append(
                    try runtime.addStage(
                        "http-parse-\(i)", handler: HTTPParseHandler(worker: worker),
                        options: bound(i, StageOptions(queueCapacity: options.parseQueueCapacity)),
                        admission: options.parseAdmission))
            } else {
                parses.append(nil)
            }
            workers.append(worker)
            controls.append(control)
        }
        self.workers = workers
        self.controls = controls
        readStage = try runtime.addIOStage("http-read", replicas: .perThread) { i in
            HTTPReadHandler(worker: workers[i], parse: parses[i])
        }
        var connection = options.connection
        connection.idleTimeout = configuration.limits.keepAliveTimeout
        connection.halfClose = true
        listener = try runtime.listen(
            host: options.host, port: options.port, readStage: readStage,
            options: ListenerOptions(
                backlog: options.backlog, maxConnections: options.maxConnections, connection: connection))
        port = listener.port
    }

    /// Connections open now that sent at least one byte.
    public var openConnections: Int {
        workers.reduce(0) { $0 + $1.openConnections.load(ordering: .relaxed) }
    }

    /// Every worker's counters summed (requests, responses by class, 503s
    /// shed, 408s).
    public var counters: HTTPCounters.Snapshot { site.counterTotals }

    /// Graceful shutdown: stops accepting, closes idle connections, lets
    /// requests in flight complete (each connection closes once it owes no
    /// response), and waits up to `gracePeriod` for every connection to
    /// close. Returns the connections still open then (the runtime's
    /// shutdown closes them). Blocks the calling thread, which must not be
    /// one of the runtime's. A second call returns at once.
    @discardableResult
    public func shutdown(gracePeriod: Duration = .seconds(10)) -> Int {
        if stopping.exchange(true, ordering: .acquiringAndReleasing) { return openConnections }
        listener.close()
        for control in controls {
            try? control.enqueueControl(HTTPControlEvent(.drain))
        }
        let deadline = ContinuousClock.now + gracePeriod
        while openConnections > 0 && ContinuousClock.now < deadline {
            usleep(5000)
        }
        _ = timers.cancelAll()
        return openConnections
    }
}

/// `options` for a stage bound to shared thread `thread`.
private func bound(_ thread: Int, _ options: StageOptions) -> StageOptions {
    var o = options
    o.boundThread = thread
    return o
}
