import ArgumentParser
import Glibc
import Seda
import SedaGnutella

/// `seda-gnutella`: the Gnutella 0.4 packet router on Seda (the seed's
/// second application). A thin command line over SedaGnutella's stages.
@main
struct SedaGnutellaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seda-gnutella",
        abstract: "A Gnutella 0.4 router built of Seda stages (GnuServer, GnuRouter, GnuLogger, GnuCatcher).",
        discussion: """
            Listens on 127.0.0.1 (--host to change), accepts and dials Gnutella 0.4 peers, routes \
            pings and queries by flooding and pongs, query hits and pushes along their reverse \
            paths. Prints "seda-gnutella: listening on 127.0.0.1:<port>" on stdout, then a status \
            line every --status-interval seconds on stderr (a human one and a \
            "gnutella-status:" one of key=value pairs), and exits 0 on SIGINT or SIGTERM.
            """
    )

    // MARK: Network

    @Option(help: "Port to listen on (0 picks one).")
    var port: Int = 6346

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .customLong("peer"), help: "A peer to connect to and keep connected (a.b.c.d:port); repeatable.")
    var peers: [String] = []

    @Option(help: "Connections the catcher keeps, dialling addresses learnt from pongs (0: only --peer).")
    var targetConnections: Int = 0

    @Option(help: "Most handshaken connections; also the listener's limit (past it accepting pauses).")
    var maxConnections: Int = 10_000

    @Option(
        help: "Per-connection outgoing limit in bytes, or 'none' (a peer that stops reading is then never cut off).")
    var outgoingLimit: String = "1048576"

    @Option(help: "Past the outgoing limit: close the connection (close) or refuse the write and report it (notify).")
    var clog: String = "close"

    // MARK: Protocol and routing

    @Option(help: "Largest payload accepted, bytes (above it the connection is closed).")
    var maxPayload: Int = 64 * 1024

    @Option(help: "Seconds a connection may take to complete its handshake.")
    var handshakeTimeout: Double = 10

    @Option(help: "Bound on TTL + hops; higher TTLs are lowered to it.")
    var maxTTL: Int = 7

    @Option(help: "Route lifetime, seconds (tables age every half lifetime).")
    var routeLifetime: Int = 60

    @Option(help: "Most entries per route table.")
    var tableCapacity: Int = 100_000

    // MARK: Load conditioning

    @Option(help: "QueueThreshold on the router's queue (every event refused at this length; control events pass).")
    var routerThreshold: Int?

    @Option(help: "Application-specific filter on the router's queue: refuse only queries at this length.")
    var queryFilter: Int?

    @Flag(help: "Two priority classes on the router: queries wait until no other type does.")
    var routerClasses = false

    @Flag(help: "Do not schedule the router while the logger's queue is clogged (backpressure upstream).")
    var routerPauses = false

    @Option(
        help:
            "Route cleanup ticks as 'control' events (Seda) or 'ordinary' ones a threshold may drop (the seed's pitfall)."
    )
    var cleanup: String = "control"

    @Option(help: "Router queue capacity.")
    var routerQueue: Int = 4096

    // MARK: The logger

    @Option(help: "Milliseconds each query spends in the logger (the seed's bottleneck: 20).")
    var loggerDelayMs: Double = 0

    @Option(help: "Logger threads at start.")
    var loggerThreads: Int = 1

    @Option(help: "Most logger threads (the governor's ceiling).")
    var loggerMaxThreads: Int = 8

    @Option(help: "Logger queue capacity.")
    var loggerQueue: Int = 4096

    @Option(help: "QueueThreshold on the logger: queries refused at this length (the seed's query-only threshold).")
    var loggerThreshold: Int?

    @Option(help: "Append one line per query (time, peer, TTL, hops, search text) to this file.")
    var queryLog: String?

    @Flag(help: "Run the thread governor on the logger.")
    var governor = false

    @Option(help: "Logger queue length that makes the governor add a thread.")
    var governorThreshold: Int = 1000

    @Option(help: "Governor sampling interval, milliseconds.")
    var governorIntervalMs: Int = 2000

    // MARK: Runtime

    @Option(help: "Threads of the shared thread manager (default: one per CPU).")
    var cpuThreads: Int?

    @Option(help: "The poller of the runtime's threads: default, select, poll, epoll or io_uring.")
    var poller: String = "default"

    @Option(help: "Seconds between status lines (0: none).")
    var statusInterval: Double = 5

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard IPv4Address(host) != nil else { throw ValidationError("--host must be an IPv4 address") }
        for p in peers where PeerAddress(p) == nil { throw ValidationError("--peer '\(p)' is not a.b.c.d:port") }
        guard outgoingLimit == "none" || (Int(outgoingLimit).map { $0 > 0 } ?? false) else {
            throw ValidationError("--outgoing-limit must be a positive byte count or 'none'")
        }
        guard PollerBackend(name: poller) != nil else {
            throw ValidationError("--poller must be default, select, poll, epoll or io_uring")
        }
        guard ["close", "notify"].contains(clog) else { throw ValidationError("--clog must be close or notify") }
        guard ["control", "ordinary"].contains(cleanup) else {
            throw ValidationError("--cleanup must be control or ordinary")
        }
        guard routerThreshold == nil || queryFilter == nil else {
            throw ValidationError("--router-threshold and --query-filter are two policies for one queue: pick one")
        }
        guard maxPayload >= 0, (1...255).contains(maxTTL), routeLifetime >= 1, tableCapacity >= 1,
            maxConnections >= 1, targetConnections >= 0, handshakeTimeout > 0, loggerDelayMs >= 0, statusInterval >= 0,
            loggerThreads >= 1, loggerMaxThreads >= loggerThreads, governorThreshold >= 1, governorIntervalMs >= 10
        else { throw ValidationError("a numeric option is out of range (see --help)") }
    }

    func configuration() -> GnutellaConfiguration {
        var c = GnutellaConfiguration()
        c.server.maxPayload = maxPayload
        c.server.maxConnections = maxConnections
        c.server.handshakeTimeout = .milliseconds(Int64(handshakeTimeout * 1000))
        c.routing = RoutingPolicy(
            maxTTL: UInt8(maxTTL), tableCapacity: tableCapacity,
            routeLifetime: .seconds(routeLifetime))
        if let n = routerThreshold { c.routerAdmission = .threshold(n) }
        if let n = queryFilter { c.routerAdmission = .queryFilter(n) }
        c.routerPriorityClasses = routerClasses
        c.routerPausesWhenLoggerClogged = routerPauses
        c.cleanupDelivery = cleanup == "ordinary" ? .ordinary : .control
        c.routerQueueCapacity = routerQueue
        c.loggerDelay = .microseconds(Int64(loggerDelayMs * 1000))
        c.loggerThreads = loggerThreads
        c.loggerMaxThreads = loggerMaxThreads
        c.loggerQueueCapacity = loggerQueue
        c.loggerThreshold = loggerThreshold
        c.catcher.targetConnections = targetConnections
        c.catcher.seeds = peers.compactMap { PeerAddress($0) }
        return c
    }

    func run() throws {
        raiseDescriptorLimit()
        // Signals are taken by sigwait below, on this thread; every thread
        // created from here on inherits the mask.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

        let runtime = try Runtime(cpuThreads: cpuThreads, poller: PollerBackend(name: poller)!)
        let timers = try Timers(clock: runtime.clock)
        var config = configuration()
        let log = try queryLog.map { try QueryLogFile(path: $0, clock: runtime.clock) }
        if let log { config.queryRecord = { log.write($0) } }
        config.transport = .sockets(
            SocketTransport.Options(
                host: IPv4Address(host)!, port: UInt16(port),
                hardLimit: outgoingLimit == "none" ? nil : Int(outgoingLimit),
                clogPolicy: clog == "notify" ? .notify : .close, maxConnections: maxConnections))
        let node = try GnutellaNode(runtime: runtime, timers: timers, configuration: config)
        let transport = node.sockets!
        try node.start()

        var gov: ThreadGovernor?
        if governor {
            var s = GovernorSettings()
            s.threshold = governorThreshold
            s.delay = .milliseconds(governorIntervalMs)
            let g = try ThreadGovernor(runtime: runtime, settings: s)
            try g.govern(node.loggerStage)
            try g.start()
            gov = g
        }

        print("seda-gnutella: listening on \(host):\(transport.port)")
        fflush(nil)

        let status = StatusReporter(node: node, runtime: runtime, interval: statusInterval)
        let reporter = statusInterval > 0 ? try status.start() : nil
        var sig: Int32 = 0
        while true {
            if sigwait(&stopSignals, &sig) == 0, sig != SIGPIPE { break }
        }
        reporter?.stop()
        gov?.stop()
        node.stop()
        // Queued queries may each cost the logger's delay: give them back;
        // then drain the rest, so that every connection's last report
        // (its close, and why) is counted.
        try? runtime.destroyStage(named: node.loggerStage, mode: .handBack)
        try? runtime.shutdown(.drain, timeout: .seconds(10))
        log?.close()
        let s = node.statistics.snapshot()
        FileHandleStderr.write(
            "seda-gnutella: stopped (\(String(cString: strsignal(sig)))): "
                + "\(s.accepted) accepted, \(s.connectedOut) dialled, \(s.receivedTotal) descriptors in, "
                + "\(s.forwardedTotal) out, \(s.closed[.clogged] ?? 0) closed clogged, \(s.badInputCloses) closed for bad input; "
                + s.statusLine(since: nil, seconds: 0) + "\n")
    }
}

/// Raises the soft descriptor limit to the hard one (a router holds a
/// socket per peer).
func raiseDescriptorLimit() {
    var l = rlimit()
    if getrlimit(rlimitNoFile, &l) == 0, l.rlim_cur < l.rlim_max {
        l.rlim_cur = l.rlim_max
        _ = setrlimit(rlimitNoFile, &l)
    }
}

#if os(Linux)
    let rlimitNoFile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
#endif

enum FileHandleStderr {
    static func write(_ s: String) {
        var s = s
        s.withUTF8 { b in _ = Glibc.write(2, b.baseAddress, b.count) }
    }
}
