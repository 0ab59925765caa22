/// The router's rules, from the specification's routing section.
public struct RoutingPolicy: Sendable, Equatable {
    /// The bound on TTL + hops. A descriptor over it has its TTL lowered to
    /// `maxTTL - hops` (0 if hops alone reach it) and is then routed as
    /// usual: **clamped, not dropped**, and counted (``RoutingCore/ttlClamped``).
    /// The annotated specification asks servents to "carefully scrutinize
    /// the TTL field of received descriptors and lower them as necessary";
    /// lowering keeps a well-meant descriptor from an over-eager servent
    /// useful over the standard 7 hops, and a routed response can never
    /// need more than 7 to come back.
    public var maxTTL: UInt8 = GnutellaWire.defaultTTL
    /// Most entries per route table (pings, queries, push routes, push
    /// IDs seen). With 16-byte keys each entry costs about 40 bytes, so the
    /// default bounds the four tables to about 16 MB.
    public var tableCapacity: Int = 100_000
    /// How long a route lives: between half of it and all of it (the
    /// tables rotate every half lifetime).
    public var routeLifetime: Duration = .seconds(60)

    public init(
        maxTTL: UInt8 = GnutellaWire.defaultTTL, tableCapacity: Int = 100_000,
        routeLifetime: Duration = .seconds(60)
    ) {
        self.maxTTL = maxTTL
        self.tableCapacity = tableCapacity
        self.routeLifetime = routeLifetime
    }
}

/// What the router does with one descriptor.
public enum RouteDecision: Equatable, Sendable {
    /// Send to every neighbour but the one it came from (pings; queries
    /// after the logger). TTL and hops are already updated.
    case flood
    /// Send to this neighbour only (pongs and query hits back along their
    /// request's path, pushes towards their servent). TTL and hops updated.
    case forward(PeerID)
    /// A response to a request this servent made (the catcher's pings).
    case local
    /// Forward nothing.
    case drop(DropReason)
}

/// Gnutella 0.4 routing: the decisions and the route tables, with no
/// threads, sockets or clocks, so that a test drives it descriptor by
/// descriptor (the router stage wraps it).
///
/// The rules (annotated specification v0.4, "Descriptor routing"):
/// - pings and queries go to every neighbour but the sender;
/// - before forwarding, TTL is decremented and hops incremented; a
///   descriptor whose TTL is then 0 (or arrived as 0) is not forwarded;
/// - a descriptor with the same payload type and descriptor ID as one seen
///   before is not forwarded again (pings, queries, pushes; pongs and query
///   hits share their request's ID by design and are not duplicates of
///   each other);
/// - pongs and query hits go back only to the neighbour their ping or
///   query came from, and are dropped if that request was never seen (or
///   its route expired);
/// - pushes go to the neighbour that delivered a query hit carrying the
///   push's servent ID, and are dropped when no such query hit was seen.
///
/// Thread rules: not thread-safe; one owner (the router stage's handler).
public struct RoutingCore: Sendable {
    public let policy: RoutingPolicy
    private(set) var pings: RouteTable<GUID>
    private(set) var queries: RouteTable<GUID>
    /// Servent ID (from query hits) → the neighbour that sent the hit.
    private(set) var pushRoutes: RouteTable<GUID>
    /// Push descriptor IDs seen, for duplicate suppression.
    private(set) var pushesSeen: RouteTable<GUID>

    /// Descriptors whose TTL was lowered (see ``RoutingPolicy/maxTTL``).
    public private(set) var ttlClamped: UInt64 = 0
    /// Route entries dropped by rotations.
    public private(set) var expired: UInt64 = 0
    /// Rotations so far.
    public private(set) var rotations: UInt64 = 0

    public init(policy: RoutingPolicy = RoutingPolicy()) {
        self.policy = policy
        pings = RouteTable(capacity: policy.tableCapacity)
        queries = RouteTable(capacity: policy.tableCapacity)
        pushRoutes = RouteTable(capacity: policy.tableCapacity)
        pushesSeen = RouteTable(capacity: policy.tableCapacity)
    }

    /// Entries in all tables.
    public var routeCount: Int { pings.count + queries.count + pushRoutes.count + pushesSeen.count }

    /// Decides what to do with `d`, updating the tables, and TTL and hops
    /// when it is to be forwarded. A ping or query whose origin is
    /// ``PeerID/local`` is this servent's own: it is recorded (its answers
    /// come back as ``RouteDecision/local``) and flooded as made.
    public mutating func route(_ d: Descriptor) -> RouteDecision {
        clampTTL(d)
        switch d.type {
        case .ping, .query:
            let r = d.type == .ping ? pings.insert(d.id, route: d.origin) : queries.insert(d.id, route: d.origin)
            switch r {
            case .present: return .drop(.duplicate)
            case .full: return .drop(.tableFull)
            // Our own request leaves with the TTL it was made with.
            case .inserted where d.origin == .local: return d.ttl > 0 ? .flood : .drop(.ttlExpired)
            case .inserted: return advance(d) ? .flood : .drop(.ttlExpired)
            }
        case .pong, .queryHit:
            let back = d.type == .pong ? pings.lookup(d.id) : queries.lookup(d.id)
            guard let back else { return .drop(.noRoute) }
            if d.type == .queryHit, let servent = d.serventID {
                // A push for this servent will come back the way the hit went.
                pushRoutes.update(servent, route: d.origin)
            }
            return toward(back, d)
        case .push:
            switch pushesSeen.insert(d.id, route: d.origin) {
            case .present: return .drop(.duplicate)
            case .full: return .drop(.tableFull)
            case .inserted: break
            }
            guard let servent = d.serventID, let target = pushRoutes.lookup(servent) else { return .drop(.noRoute) }
            return toward(target, d)
        }
    }

    /// Records a request this servent makes (a ping or a query), so that
    /// its responses come back as ``RouteDecision/local``. Returns false if
    /// the table is full or the ID is taken.
    public mutating func originate(_ d: Descriptor) -> Bool {
        switch d.type {
        case .ping: pings.insert(d.id, route: .local) == .inserted
        case .query: queries.insert(d.id, route: .local) == .inserted
        default: false
        }
    }

    /// Ages every table by one generation (call every half route lifetime).
    public mutating func rotate() {
        var n = pings.rotate()
        n += queries.rotate()
        n += pushRoutes.rotate()
        n += pushesSeen.rotate()
        expired += UInt64(n)
        rotations += 1
    }

    private func toward(_ target: PeerID, _ d: Descriptor) -> RouteDecision {
        if target == .local { return .local }
        if target == d.origin { return .drop(.loop) }
        return advance(d) ? .forward(target) : .drop(.ttlExpired)
    }

    private mutating func clampTTL(_ d: Descriptor) {
        let max = policy.maxTTL
        if Int(d.ttl) + Int(d.hops) > Int(max) {
            d.ttl = d.hops >= max ? 0 : max - d.hops
            ttlClamped += 1
        }
    }

    /// One hop: false if the descriptor may not go further.
    private func advance(_ d: Descriptor) -> Bool {
        guard d.ttl > 0 else { return false }
        d.ttl -= 1
        if d.hops < UInt8.max { d.hops += 1 }
        return d.ttl > 0
    }
}
