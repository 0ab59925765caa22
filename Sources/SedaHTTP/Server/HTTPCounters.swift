import Synchronization

/// One request processor's counters. A single thread writes them (the
/// processor's), so an increment is a relaxed load and store, not a locked
/// read-modify-write; any thread reads them (the status page sums every
/// processor's).
public final class HTTPCounters: Sendable {
    /// Requests handed over by the parser (refused ones included).
    public let requests = Atomic<UInt64>(0)
    /// Requests refused by the parser or the path check (4xx/5xx before any lookup).
    public let refused = Atomic<UInt64>(0)
    /// Responses by class: 2xx, 3xx, 4xx, 5xx.
    public let responses2xx = Atomic<UInt64>(0)
    public let responses3xx = Atomic<UInt64>(0)
    public let responses4xx = Atomic<UInt64>(0)
    public let responses5xx = Atomic<UInt64>(0)
    /// Pages answered from the cache on the spot.
    public let servedFromCache = Atomic<UInt64>(0)
    /// Requests handed to another stage.
    public let deferred = Atomic<UInt64>(0)
    /// 503s: a stage refused the work (load shedding).
    public let shed = Atomic<UInt64>(0)
    /// 408s: a request took longer than the header timeout.
    public let timedOut = Atomic<UInt64>(0)

    public init() {}

    /// Single-writer increment (pairs with nothing: readers take a relaxed
    /// snapshot, approximate by design).
    @inline(__always)
    func bump(_ a: borrowing Atomic<UInt64>) {
        a.store(a.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    @inline(__always)
    func count(_ status: HTTPStatus) {
        switch status.code {
        case 200..<300: bump(responses2xx)
        case 300..<400: bump(responses3xx)
        case 400..<500: bump(responses4xx)
        default: bump(responses5xx)
        }
    }

    /// The values now.
    public var snapshot: Snapshot {
        Snapshot(
            requests: requests.load(ordering: .relaxed), refused: refused.load(ordering: .relaxed),
            responses2xx: responses2xx.load(ordering: .relaxed),
            responses3xx: responses3xx.load(ordering: .relaxed),
            responses4xx: responses4xx.load(ordering: .relaxed),
            responses5xx: responses5xx.load(ordering: .relaxed),
            servedFromCache: servedFromCache.load(ordering: .relaxed),
            deferred: deferred.load(ordering: .relaxed), shed: shed.load(ordering: .relaxed),
            timedOut: timedOut.load(ordering: .relaxed))
    }

    /// Counter values at one moment (summable across processors).
    public struct Snapshot: Sendable, Equatable {
        public var requests: UInt64 = 0
        public var refused: UInt64 = 0
        public var responses2xx: UInt64 = 0
        public var responses3xx: UInt64 = 0
        public var responses4xx: UInt64 = 0
        public var responses5xx: UInt64 = 0
        public var servedFromCache: UInt64 = 0
        public var deferred: UInt64 = 0
        public var shed: UInt64 = 0
        public var timedOut: UInt64 = 0

        public init() {}

        init(
            requests: UInt64, refused: UInt64, responses2xx: UInt64, responses3xx: UInt64,
            responses4xx: UInt64, responses5xx: UInt64, servedFromCache: UInt64, deferred: UInt64,
            shed: UInt64, timedOut: UInt64
        ) {
            self.requests = requests
            self.refused = refused
            self.responses2xx = responses2xx
            self.responses3xx = responses3xx
            self.responses4xx = responses4xx
            self.responses5xx = responses5xx
            self.servedFromCache = servedFromCache
            self.deferred = deferred
            self.shed = shed
            self.timedOut = timedOut
        }

        static func + (a: Snapshot, b: Snapshot) -> Snapshot {
            Snapshot(
                requests: a.requests &+ b.requests, refused: a.refused &+ b.refused,
                responses2xx: a.responses2xx &+ b.responses2xx, responses3xx: a.responses3xx &+ b.responses3xx,
                responses4xx: a.responses4xx &+ b.responses4xx, responses5xx: a.responses5xx &+ b.responses5xx,
                servedFromCache: a.servedFromCache &+ b.servedFromCache, deferred: a.deferred &+ b.deferred,
                shed: a.shed &+ b.shed, timedOut: a.timedOut &+ b.timedOut)
        }
    }
}
