import Seda

/// The router stage (GnuRouter): applies ``RoutingCore`` to each
/// descriptor and acts on the decision: pings are flooded here, queries go
/// to the logger (which floods them once logged), responses and pushes go
/// to their one neighbour. Route cleanup ticks age the tables. Addresses
/// seen in pongs go to the catcher, one event per batch.
///
/// Thread rules: a stage handler; `core` sits behind a lock so that the
/// stage may run with any concurrency (with 1, the lock is never contended).
public final class RouterHandler: EventHandler, Sendable {
    public typealias Event = GnutellaEvent

    private let core: Lock<RoutingCore>
    private let forwarding: Forwarding
    private let statistics: GnutellaStatistics
    private let logger: Sink<GnutellaEvent>?
    private let catcher: Sink<CatcherEvent>?

    /// - Parameters:
    ///   - logger: where queries go to be logged and flooded (nil: flood here).
    ///   - catcher: told of addresses found in pongs (nil: nobody).
    init(
        policy: RoutingPolicy, neighbours: Neighbours, statistics: GnutellaStatistics,
        logger: Sink<GnutellaEvent>?, catcher: Sink<CatcherEvent>?
    ) {
        core = Lock(RoutingCore(policy: policy))
        forwarding = Forwarding(neighbours: neighbours, statistics: statistics)
        self.statistics = statistics
        self.logger = logger
        self.catcher = catcher
    }

    /// Entries in the route tables now.
    public var routeCount: Int { core.withLock { $0.routeCount } }

    /// Table rotations so far (cleanup ticks handled).
    public var rotations: UInt64 { core.withLock { $0.rotations } }

    public func handle(_ batch: inout EventBatch<GnutellaEvent>) throws {
        var discovered: [PeerAddress] = []
        batch.forEach { e in
            guard e.kind == .descriptor else {
                if (e as? Tick)?.job == .routeCleanup { core.withLock { $0.rotate() } }
                return
            }
            let d = unsafeDowncast(e, to: Descriptor.self)
            let (decision, clamped) = core.withLock { c in
                let before = c.ttlClamped
                return (c.route(d), c.ttlClamped - before)
            }
            if clamped > 0 { statistics.ttlClamped(clamped) }
            if d.type == .pong, catcher != nil, discovered.count < 64,
                let pong = try? Pong.parse(d.payload), pong.port != 0
            {
                discovered.append(pong.peerAddress)
            }
            switch decision {
            case .flood:
                if d.type == .query, let logger {
                    if !logger.enqueueLossy(d) { statistics.dropped(.loggerRefused) }
                } else {
                    forwarding.flood(d)
                }
            case .forward(let peer):
                if !forwarding.forward(d, to: peer) { statistics.dropped(.peerGone) }
            case .local:
                statistics.dropped(.consumedLocally)
            case .drop(let reason):
                statistics.dropped(reason)
            }
        }
        if let catcher, !discovered.isEmpty {
            catcher.enqueueLossy(CatcherEvent(.discovered(discovered)))
        }
    }
}
