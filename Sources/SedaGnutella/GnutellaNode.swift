import Seda

/// How the router's queue is guarded (its admission controller).
public enum RouterAdmission: Sendable, Equatable {
    /// Nothing but the queue's capacity.
    case none
    /// ``QueueThreshold``: refuse every event while the queue holds this
    /// many (the seed's "threshold incoming event queue at 1000 entries";
    /// control events pass).
    case threshold(Int)
    /// Application-specific filtering: refuse queries while the queue holds
    /// this many, admit every other type (an ``AdmissionPredicate``).
    case queryFilter(Int)

    /// The admission controller this setting puts on the router's sink.
    public func controller() -> (any AdmissionController<GnutellaEvent>)? {
        switch self {
        case .none:
            return nil
        case .threshold(let n):
            return QueueThreshold<GnutellaEvent>(n)
        case .queryFilter(let n):
            return AdmissionPredicate<GnutellaEvent> { e, stage in
                guard e.kind == .descriptor, unsafeDowncast(e, to: Descriptor.self).type == .query else { return nil }
                return stage.queueLength >= n ? .queryFilter : nil
            }
        }
    }
}

extension RejectionReason {
    /// A query refused by ``RouterAdmission/queryFilter(_:)``.
    public static let queryFilter = RejectionReason("queryFilter")
}

/// How a node's connections reach GnuServer.
public enum GnutellaTransport: Sendable, Equatable {
    /// GnuServer is a stage of ``LinkEvent``s (``GnutellaNode/serverSink``),
    /// for transports that report with objects (``InProcessNetwork``).
    case linkEvents
    /// GnuServer is an I/O stage on Seda's sockets, replicated per shared
    /// thread, listening from the node's creation on
    /// (``GnutellaNode/sockets``).
    case sockets(SocketTransport.Options)
}

/// Everything a node's stages are built from.
public struct GnutellaConfiguration: Sendable {
    /// Prepended to the stage names (several nodes in one runtime); no '.'
    /// (configuration keys name stages between dots).
    public var stagePrefix = ""
    public var server = GnutellaServer.Settings()
    public var transport = GnutellaTransport.linkEvents
    public var serverQueueCapacity = 4096
    public var routing = RoutingPolicy()
    public var routerAdmission = RouterAdmission.none
    public var routerQueueCapacity = 4096
    /// Two priority classes on the router: pings, pongs, query hits and
    /// pushes first, queries only when none of those wait; each class has
    /// the full capacity, so a flood of queries fills only its own.
    public var routerPriorityClasses = false
    /// The router is not scheduled while the logger's queue is clogged
    /// (backpressure upstream; the router's queue then fills).
    public var routerPausesWhenLoggerClogged = false
    public var cleanupDelivery = CleanupDelivery.control

    /// Time spent per query in the logger (the seed's 20 ms bottleneck).
    public var loggerDelay: Duration = .zero
    /// The logger's dedicated pool: threads at start and the most the
    /// thread governor may give it.
    public var loggerThreads = 1
    public var loggerMaxThreads = 8
    public var loggerQueueCapacity = 4096
    /// Refuse queries while the logger's queue holds this many (the seed's
    /// "threshold only the number of query packets processed"); nil: only
    /// its capacity.
    public var loggerThreshold: Int? = nil
    /// Called with every query the logger records.
    public var queryRecord: (@Sendable (Descriptor) -> Void)? = nil

    public var catcher = Catcher.Settings()

    public init() {}
}

/// One Gnutella router: its stages (GnuServer, GnuRouter, GnuLogger,
/// GnuCatcher and a ticker) in a Seda runtime, wired to each other.
///
/// ```
/// transport ──► GnuServer ──► GnuRouter ──► neighbours (pings, pongs, query hits, pushes)
///   ▲  (handshake, framing,      │ queries
///   │   bad input)               ▼
///   │                        GnuLogger ──► neighbours (queries)
///   └──── GnuCatcher ◄── addresses from pongs
/// ```
///
/// On sockets (``GnutellaTransport/sockets(_:)``) GnuServer is an I/O stage
/// with one replica per shared thread (`GnuServer-0`, `GnuServer-1`...):
/// see ``SocketTransport``.
///
/// Thread rules: any thread. ``start(connector:)`` (or ``start()``) once,
/// then ``stop()``; the runtime's shutdown tears the stages down.
public final class GnutellaNode: Sendable {
    public let runtime: Runtime
    public let configuration: GnutellaConfiguration
    public let statistics = GnutellaStatistics()
    public let neighbours = Neighbours()
    public let server: GnutellaServer
    public let timers: Timers
    /// Where a transport that reports with ``LinkEvent``s delivers
    /// (``GnutellaTransport/linkEvents``; nil on sockets).
    public let serverSink: Sink<LinkEvent>?
    /// The socket transport (``GnutellaTransport/sockets(_:)``; nil otherwise):
    /// its port, and the connector for the catcher.
    public let sockets: SocketTransport?
    public let routerSink: Sink<GnutellaEvent>
    public let loggerSink: Sink<GnutellaEvent>
    public let catcherSink: Sink<CatcherEvent>
    public let router: RouterHandler
    public let catcher: Catcher
    private let ticker: TickerHandler
    private let tickerSink: Sink<Tick>

    /// Stage names, for snapshots and the governor.
    public let serverStage, routerStage, loggerStage, catcherStage, tickerStage: String

    /// Builds the stages in `runtime`. `timers` fires the periodic ticks
    /// (a manual-clock facility in tests, polled by hand).
    public init(runtime: Runtime, timers: Timers, configuration: GnutellaConfiguration = GnutellaConfiguration()) throws
    {
        self.runtime = runtime
        self.timers = timers
        self.configuration = configuration
        let c = configuration
        let p = c.stagePrefix
        serverStage = p + "GnuServer"
        routerStage = p + "GnuRouter"
        loggerStage = p + "GnuLogger"
        catcherStage = p + "GnuCatcher"
        tickerStage = p + "GnuTicker"

        let logger = QueryLogger(
            delay: c.loggerDelay, record: c.queryRecord, neighbours: neighbours,
            statistics: statistics)
        loggerSink = try runtime.addStage(
            loggerStage, handler: logger,
            options: StageOptions(
                threadManager: .dedicated(threads: c.loggerThreads, maxThreads: c.loggerMaxThreads),
                batchSize: 1, queueCapacity: c.loggerQueueCapacity),
            admission: c.loggerThreshold.map { QueueThreshold<GnutellaEvent>($0) })

        catcher = Catcher(settings: c.catcher, neighbours: neighbours, clock: runtime.clock)
        catcherSink = try runtime.addStage(
            catcherStage, handler: catcher,
            options: StageOptions(batchSize: 16, queueCapacity: 256))

        router = RouterHandler(
            policy: c.routing, neighbours: neighbours, statistics: statistics,
            logger: loggerSink, catcher: catcherSink)
        routerSink = try runtime.addStage(
            routerStage, handler: router,
            options: StageOptions(
                queueCapacity: c.routerQueueCapacity,
                priorityClasses: c.routerPriorityClasses ? 2 : 1,
                pauseWhenDownstreamClogged: c.routerPausesWhenLoggerClogged),
            admission: c.routerAdmission.controller())

        server = GnutellaServer(
            settings: c.server, statistics: statistics, neighbours: neighbours,
            clock: runtime.clock, router: routerSink, routerClasses: c.routerPriorityClasses,
            catcher: catcherSink)

        let routerSink = self.routerSink
        let catcherSink = self.catcherSink
        let statistics = self.statistics
        var jobs: [Tick.Job: TickerHandler.Job] = [:]
        let cleanupEvery = c.routing.routeLifetime / 2
        switch c.cleanupDelivery {
        case .control:
            jobs[.routeCleanup] = .init(period: cleanupEvery) { try? routerSink.enqueueControl(Tick(.routeCleanup)) }
        case .ordinary:
            jobs[.routeCleanup] = .init(period: cleanupEvery) {
                do throws(SedaError) {
                    try routerSink.enqueue(Tick(.routeCleanup))
                } catch {
                    statistics.tickDropped()
                }
            }
        }
        let server = self.server
        let clock = runtime.clock
        jobs[.handshakeSweep] = .init(period: max(c.server.handshakeTimeout / 2, .milliseconds(10))) {
            server.sweep(now: clock.now)
        }
        if c.catcher.targetConnections > 0 || !c.catcher.seeds.isEmpty {
            jobs[.catcher] = .init(period: c.catcher.interval) { try? catcherSink.enqueueControl(CatcherEvent(.tick)) }
        }
        ticker = TickerHandler(timers: timers, jobs: jobs)
        tickerSink = try runtime.addStage(
            tickerStage, handler: ticker, options: StageOptions(batchSize: 8, queueCapacity: 64))
        // Last: on sockets, connections may arrive from here on.
        switch c.transport {
        case .linkEvents:
            serverSink = try runtime.addStage(
                serverStage, handler: ServerHandler(server: server),
                options: StageOptions(queueCapacity: c.serverQueueCapacity))
            sockets = nil
        case .sockets(let options):
            serverSink = nil
            sockets = try SocketTransport(
                runtime: runtime, name: serverStage, server: server, options: options,
                stageOptions: StageOptions(queueCapacity: c.serverQueueCapacity))
        }
    }

    /// Starts the periodic work (route cleanup; the catcher's first check
    /// at once). `connector` dials for the catcher (nil: never dial).
    public func start(connector: (any PeerConnector)?) throws(SedaError) {
        catcher.attach(connector: connector, router: routerSink)
        try ticker.start(sink: tickerSink, immediately: [.catcher])
    }

    /// ``start(connector:)`` with the socket transport as the catcher's
    /// connector (none on ``GnutellaTransport/linkEvents``).
    public func start() throws(SedaError) { try start(connector: sockets) }

    /// Stops the periodic work, stops accepting and closes every connection
    /// (after flushing what is queued for it).
    public func stop() {
        timers.cancelAll()
        sockets?.shutdown()
        server.closeAll()
    }

    /// Entries in the route tables.
    public var routeCount: Int { router.routeCount }
}
