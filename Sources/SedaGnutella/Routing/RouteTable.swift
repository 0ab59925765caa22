/// A bounded table of recent routes, aged by generations: the router's
/// "list of recent packets" (the seed's words).
///
/// Entries go into the current generation; ``rotate()`` drops the previous
/// generation and makes the current one previous. Rotated every half
/// lifetime, an entry lives between one half and one whole lifetime, and
/// expiring costs one `removeAll(keepingCapacity:)` per rotation, not a
/// timer per entry. The table never holds more than `capacity` entries
/// (both generations together): past it, inserts fail (the router then
/// drops the request, whose responses could not be routed anyway), so its
/// memory is bounded by the capacity whatever the load, provided rotations
/// keep coming. If they stop (the seed's dropped cleanup timers), the
/// table fills to capacity and every new request is refused.
///
/// Thread rules: a value type, owned by the router.
public struct RouteTable<Key: Hashable & Sendable>: Sendable {
    /// Most entries held at once.
    public let capacity: Int

    private var current: [Key: PeerID] = [:]
    private var previous: [Key: PeerID] = [:]

    public init(capacity: Int) {
        precondition(capacity >= 1, "a route table holds at least one entry")
        self.capacity = capacity
    }

    public enum Insertion: Equatable, Sendable {
        case inserted
        /// The key is already there (a duplicate), with its route.
        case present(PeerID)
        /// The table is at capacity; nothing was inserted.
        case full
    }

    /// Entries in both generations.
    public var count: Int { current.count + previous.count }

    /// Inserts `key` unless it is there already (in either generation).
    public mutating func insert(_ key: Key, route: PeerID) -> Insertion {
        if let r = current[key] ?? previous[key] { return .present(r) }
        if count >= capacity { return .full }
        current[key] = route
        return .inserted
    }

    /// Sets `key`'s route in the current generation (refreshing its age);
    /// returns false if the table is full and `key` is new.
    @discardableResult
    public mutating func update(_ key: Key, route: PeerID) -> Bool {
        if current[key] != nil {
            current[key] = route
            return true
        }
        if previous.removeValue(forKey: key) == nil, count >= capacity { return false }
        current[key] = route
        return true
    }

    /// The route recorded for `key`, if it has not expired.
    public func lookup(_ key: Key) -> PeerID? {
        current[key] ?? previous[key]
    }

    /// Ages the table by one generation; returns how many entries expired.
    @discardableResult
    public mutating func rotate() -> Int {
        let expired = previous.count
        swap(&current, &previous)
        current.removeAll(keepingCapacity: true)
        return expired
    }
}
