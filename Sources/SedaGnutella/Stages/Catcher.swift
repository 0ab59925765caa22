import Seda

/// What the catcher hears.
public final class CatcherEvent: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Time to check the connection count.
        case tick
        /// Addresses advertised in pongs.
        case discovered([PeerAddress])
        /// An outbound connection opened (the handshake follows).
        case connected(PeerAddress)
        /// An outbound connect failed.
        case connectFailed(PeerAddress)
    }

    public let kind: Kind
    public init(_ kind: Kind) { self.kind = kind }
}

/// The catcher stage (GnuCatcher): keeps the node at a target number of
/// connections by dialling addresses it has learnt (the configured seeds
/// first, then addresses from pongs, newest first), and pings the network
/// to learn more when it runs short. A failed address is not redialled
/// before ``Settings/redialAfter``.
///
/// Thread rules: a stage handler; its state sits behind a lock (never
/// contended at concurrency 1).
public final class Catcher: EventHandler, Sendable {
    public typealias Event = CatcherEvent

    public struct Settings: Sendable, Equatable {
        /// Connections to keep (0: never dial, except the seeds).
        public var targetConnections: Int = 0
        /// Addresses dialled first, and again whenever they are not connected.
        public var seeds: [PeerAddress] = []
        /// How often the catcher checks.
        public var interval: Duration = .seconds(5)
        /// Most addresses remembered.
        public var hostCacheSize: Int = 1000
        /// Least time between two dials of one address.
        public var redialAfter: Duration = .seconds(30)
        /// Most dials started per check.
        public var maxDialsPerCheck: Int = 4
        /// TTL of the pings it sends to discover servents.
        public var pingTTL: UInt8 = 3
        /// Our own listening address, never dialled.
        public var ownAddress: PeerAddress?

        public init(
            targetConnections: Int = 0, seeds: [PeerAddress] = [], interval: Duration = .seconds(5),
            hostCacheSize: Int = 1000, redialAfter: Duration = .seconds(30), maxDialsPerCheck: Int = 4,
            pingTTL: UInt8 = 3, ownAddress: PeerAddress? = nil
        ) {
            self.targetConnections = targetConnections
            self.seeds = seeds
            self.interval = interval
            self.hostCacheSize = hostCacheSize
            self.redialAfter = redialAfter
            self.maxDialsPerCheck = maxDialsPerCheck
            self.pingTTL = pingTTL
            self.ownAddress = ownAddress
        }
    }

    private struct State {
        var cache: [PeerAddress] = []  // newest first
        var known: Set<PeerAddress> = []
        var dialing: Set<PeerAddress> = []
        var lastDial: [PeerAddress: Int64] = [:]
        var dials: UInt64 = 0
        var pings: UInt64 = 0
    }

    public let settings: Settings
    private let state = Lock(State())
    private let neighbours: Neighbours
    private let clock: SedaClock
    private let connector = Lock<(any PeerConnector)?>(nil)
    private let router = Lock<Sink<GnutellaEvent>?>(nil)

    init(settings: Settings, neighbours: Neighbours, clock: SedaClock) {
        self.settings = settings
        self.neighbours = neighbours
        self.clock = clock
    }

    /// Set once the transport and the router exist.
    func attach(connector: (any PeerConnector)?, router: Sink<GnutellaEvent>) {
        self.connector.withLock { $0 = connector }
        self.router.withLock { $0 = router }
    }

    /// Addresses remembered (seeds not included).
    public var hostCache: [PeerAddress] { state.withLock { $0.cache } }
    /// Dials started so far.
    public var dials: UInt64 { state.withLock { $0.dials } }
    /// Discovery pings sent so far.
    public var pings: UInt64 { state.withLock { $0.pings } }

    public func handle(_ batch: inout EventBatch<CatcherEvent>) throws {
        batch.forEach { e in
            switch e.kind {
            case .tick: maintain()
            case .discovered(let addresses): learn(addresses)
            case .connected(let a): _ = state.withLock { $0.dialing.remove(a) }
            case .connectFailed(let a): _ = state.withLock { $0.dialing.remove(a) }
            }
        }
    }

    private func learn(_ addresses: [PeerAddress]) {
        state.withLock { s in
            for a in addresses where a != settings.ownAddress && !settings.seeds.contains(a) {
                if s.known.contains(a) {
                    s.cache.removeAll { $0 == a }
                } else {
                    s.known.insert(a)
                }
                s.cache.insert(a, at: 0)
            }
            while s.cache.count > settings.hostCacheSize {
                s.known.remove(s.cache.removeLast())
            }
        }
    }

    private func maintain() {
        let connected = neighbours.remoteAddresses
        let now = clock.now
        let redial = nanos(settings.redialAfter)
        let (toDial, needPing) = state.withLock { s -> ([PeerAddress], Bool) in
            func eligible(_ a: PeerAddress) -> Bool {
                !connected.contains(a) && !s.dialing.contains(a)
                    && (s.lastDial[a].map { now - $0 >= redial } ?? true)
            }
            var picks = settings.seeds.filter(eligible)
            let limit =
                picks.count + max(0, settings.targetConnections - connected.count - s.dialing.count - picks.count)
            for a in s.cache where picks.count < limit && eligible(a) { picks.append(a) }
            picks = Array(picks.prefix(settings.maxDialsPerCheck))
            for a in picks {
                s.dialing.insert(a)
                s.lastDial[a] = now
            }
            s.dials += UInt64(picks.count)
            // Forget dial times older than the redial delay (bounded state).
            if s.lastDial.count > 2 * settings.hostCacheSize {
                s.lastDial = s.lastDial.filter { now - $0.value < redial }
            }
            let short = connected.count + s.dialing.count < settings.targetConnections
            if short && !connected.isEmpty { s.pings += 1 }
            return (picks, short && !connected.isEmpty)
        }
        if let c = connector.withLock({ $0 }) {
            for a in toDial { c.connect(to: a) }
        }
        if needPing, let router = router.withLock({ $0 }) {
            router.enqueueLossy(Descriptor(ttl: settings.pingTTL, .ping(extensions: [])))
        }
    }
}

func nanos(_ d: Duration) -> Int64 {
    let (s, a) = d.components
    let (m, o) = s.multipliedReportingOverflow(by: 1_000_000_000)
    if o { return s < 0 ? Int64.min : Int64.max }
    let (r, o2) = m.addingReportingOverflow(a / 1_000_000_000)
    return o2 ? Int64.max : r
}
