import ArgumentParser
import Foundation
import Glibc
import Logging
import Seda
import SedaConfiguration
import SedaHTTP

/// `seda-httpd`: Haboob, the SEDA web server, on Seda. A thin command line
/// over SedaHTTP's ``HTTPServer``.
///
/// The flags are a contract (benchmarks drive the server with them): keep
/// their names.
@main
struct SedaHTTPDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seda-httpd",
        abstract: "Haboob, the SEDA web server: HTTP/1.1 static files (or a built-in site) on Seda stages.",
        discussion: """
            Without a document root it serves the built-in site: the seed's 8 KB page at / and \
            /index.html, /bottleneck (a stage burning --bottleneck-ms of CPU on \
            --bottleneck-threads threads, guarded by the response-time controller with \
            --response-time-target-ms), /status (live per-stage statistics and the stage graph) \
            and /metrics (Prometheus). Prints "seda-httpd listening on http://ADDR:PORT/" on \
            stdout once listening; SIGINT or SIGTERM stop it gracefully (requests in flight \
            complete) and it exits 0.
            """
    )

    @Argument(help: "Directory to serve (none: the built-in default site).")
    var documentRoot: String?

    @Option(help: "Port to listen on (0 picks one).")
    var port: Int = 8080

    @Option(help: "Numeric address to listen on.")
    var address: String = "127.0.0.1"

    @Option(help: "Shared threads (workers), each serving its own connections (default: one per CPU).")
    var threads: Int?

    @Option(help: "Poller the workers wait in: select, poll, epoll or io_uring (default: SEDA_POLLER, else built-in).")
    var poller: String?

    @Option(
        help:
            "Disk engine of the file stage (document root): io_uring, libaio, threads or default (SEDA_DISK, else io_uring)."
    )
    var disk: String?

    @Option(help: "A Seda configuration file (JSON): its seda.cpuThreads and seda.pinThreads set the runtime.")
    var config: String?

    @Option(help: "Most connections open at once; accepting pauses at the limit (default: no limit).")
    var maxConnections: Int?

    @Option(help: "Seconds a client may take to send a request header (then 408).")
    var headerTimeout: Double = 60

    @Option(help: "Seconds an idle keep-alive connection stays open.")
    var keepaliveTimeout: Double = 75

    @Option(help: "CPU milliseconds /bottleneck burns per request.")
    var bottleneckMs: Double = 1

    @Option(help: "Threads of the /bottleneck stage.")
    var bottleneckThreads: Int = 2

    @Option(help: "Guard /bottleneck with the response-time controller at this p90 target (ms); the excess gets 503.")
    var responseTimeTargetMs: Double?

    @Option(help: "fused: parse called by the read stage directly; staged: a queue (stage) between read and parse.")
    var pipeline: String = "fused"

    @Flag(help: "Log every response on stderr (swift-log, info level).")
    var accessLog = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port \(port) is not in 0...65535") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        if let p = poller, PollerBackend(name: p) == nil {
            throw ValidationError("--poller '\(p)' is not one of select, poll, epoll, io_uring")
        }
        if let d = disk, DiskEngine(name: d) == nil {
            throw ValidationError("--disk '\(d)' is not one of io_uring, libaio, threads, default")
        }
        if HTTPPipeline(rawValue: pipeline) == nil {
            throw ValidationError("--pipeline '\(pipeline)' is not fused or staged")
        }
        if let m = maxConnections, m < 1 { throw ValidationError("--max-connections must be at least 1") }
        // The durations become integer milliseconds or microseconds: a value
        // beyond ~31 years (or inf, nan) would trap in the conversion.
        let most = 1e9
        guard headerTimeout > 0, keepaliveTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        guard headerTimeout <= most, keepaliveTimeout <= most else {
            throw ValidationError("timeouts must be at most \(Int(most)) seconds")
        }
        guard bottleneckMs >= 0, bottleneckMs <= most else {
            throw ValidationError("--bottleneck-ms must be in 0...\(Int(most))")
        }
        guard bottleneckThreads >= 1 else { throw ValidationError("--bottleneck-threads must be at least 1") }
        if let t = responseTimeTargetMs, !(t > 0 && t <= most) {
            throw ValidationError("--response-time-target-ms must be in (0, \(Int(most))]")
        }
    }

    func run() throws {
        raiseDescriptorLimit()
        // SIGINT/SIGTERM are taken by sigwait on this thread; every thread
        // created from here on inherits the mask. SIGPIPE is ignored.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        signal(SIGPIPE, SIG_IGN)

        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "seda-httpd")
        logger.logLevel = .notice

        var cpuThreads = threads
        var pinThreads = false
        if let config {
            // SEDA_POLLER is the runtime's, not a configuration key: the
            // strict reader would refuse it.
            let environment = ProcessInfo.processInfo.environment.filter { $0.key != "SEDA_POLLER" }
            let c = try SedaConfiguration(file: config, environment: environment)
            cpuThreads = cpuThreads ?? c.cpuThreads
            pinThreads = c.pinThreads
        }
        let runtime = try Runtime(
            cpuThreads: cpuThreads, pinThreads: pinThreads, logger: logger,
            poller: poller.flatMap { PollerBackend(name: $0) } ?? .default)

        var site = documentRoot.map { HTTPServerConfiguration.forDirectory($0) } ?? HTTPServerConfiguration()
        site.limits.headerTimeout = .milliseconds(Int64(headerTimeout * 1000))
        site.limits.keepAliveTimeout = .milliseconds(Int64(keepaliveTimeout * 1000))
        site.bottleneckWork = .microseconds(Int64(bottleneckMs * 1000))
        site.bottleneckThreads = bottleneckThreads
        if let disk { site.diskEngine = DiskEngine(name: disk)! }

        var options = HTTPServerOptions()
        options.host = address
        options.port = UInt16(port)
        options.pipeline = HTTPPipeline(rawValue: pipeline)!
        options.maxConnections = maxConnections
        if let target = responseTimeTargetMs {
            var rt = ResponseTimeControllerOptions(target: .microseconds(Int64(target * 1000)))
            rt.initialRate = site.nominalBottleneckCapacity
            options.bottleneckAdmission = ResponseTimeController<HTTPDeferredRequest>(rt)
        }
        if accessLog {
            var log = Logger(label: "seda-httpd.access")
            log.logLevel = .info
            options.accessLog = log
        }
        let server = try HTTPServer(runtime: runtime, configuration: site, options: options)
        let shown = address.contains(":") ? "[\(address)]" : address
        print("seda-httpd listening on http://\(shown):\(server.port)/")
        fflush(nil)
        logger.notice(
            "serving",
            metadata: [
                "root": "\(documentRoot ?? "(built-in site)")", "threads": "\(runtime.cpuThreads)",
                "poller": "\(runtime.pollerDescription)", "pipeline": "\(pipeline)",
            ])

        var sig: Int32 = 0
        while sigwait(&stopSignals, &sig) != 0 {}
        logger.notice("stopping: requests in flight complete", metadata: ["signal": "\(sig)"])
        let left = server.shutdown(gracePeriod: .seconds(10))
        try? runtime.shutdown(.drain, timeout: .seconds(10))
        let c = server.counters
        FileHandleStderr.write(
            "seda-httpd: stopped: \(c.requests) requests, \(c.responses2xx) 2xx, \(c.responses3xx) 3xx, "
                + "\(c.responses4xx) 4xx, \(c.responses5xx) 5xx, \(c.shed) shed (503), \(c.timedOut) timed out (408)"
                + (left > 0 ? "; \(left) connections closed at the deadline" : "") + "\n")
    }
}

/// Raises the soft descriptor limit to the hard one (many connections).
func raiseDescriptorLimit() {
    var l = rlimit()
    if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l) == 0, l.rlim_cur < l.rlim_max {
        l.rlim_cur = l.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
    }
}

enum FileHandleStderr {
    static func write(_ s: String) {
        var s = s
        s.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
