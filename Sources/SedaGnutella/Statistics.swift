import Synchronization

/// Why a descriptor was not forwarded. Every drop is counted under one.
public enum DropReason: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// Same payload type and descriptor ID as one seen before.
    case duplicate
    /// A pong or query hit whose request was never seen (or expired); a
    /// push for a servent no query hit named.
    case noRoute
    /// TTL reached 0.
    case ttlExpired
    /// The route table is full, so the request could not be recorded.
    case tableFull
    /// A response whose route leads back to the neighbour it came from.
    case loop
    /// Its route leads to a neighbour that has gone since.
    case peerGone
    /// The payload does not parse (``PayloadError``).
    case malformed
    /// The router's admission controller refused it (a threshold, or the
    /// application's query filter).
    case routerRefused
    /// The router's queue was full.
    case routerFull
    /// The logger refused or could not queue a query (the application-
    /// specific filter: queries are the first to go).
    case loggerRefused
    /// A response to one of our own requests, consumed here.
    case consumedLocally

    public var description: String {
        switch self {
        case .duplicate: "duplicate"
        case .noRoute: "no-route"
        case .ttlExpired: "ttl-expired"
        case .tableFull: "table-full"
        case .loop: "loop"
        case .peerGone: "peer-gone"
        case .malformed: "malformed"
        case .routerRefused: "router-refused"
        case .routerFull: "router-full"
        case .loggerRefused: "logger-refused"
        case .consumedLocally: "consumed-locally"
        }
    }
}

/// Why a connection ended. Every close is counted under one.
public enum CloseReason: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// The handshake bytes were wrong (garbage instead of a handshake).
    case badHandshake
    /// A header with a payload type 0.4 does not define.
    case unknownPayloadType
    /// A header announcing more than the maximum payload.
    case payloadTooLong
    /// The stream ended inside a descriptor (or inside the handshake).
    case truncated
    /// No complete handshake in time.
    case handshakeTimeout
    /// The outgoing queue passed its hard limit: the peer stopped reading.
    case clogged
    /// The peer closed after a complete descriptor (the normal end).
    case peerClosed
    /// A socket error.
    case error
    /// We closed it (shutdown, too many connections).
    case local

    public var description: String {
        switch self {
        case .badHandshake: "bad-handshake"
        case .unknownPayloadType: "unknown-type"
        case .payloadTooLong: "payload-too-long"
        case .truncated: "truncated"
        case .handshakeTimeout: "handshake-timeout"
        case .clogged: "clogged"
        case .peerClosed: "peer-closed"
        case .error: "error"
        case .local: "local"
        }
    }

    /// Closes that count as bad input from the peer.
    public var isBadInput: Bool {
        switch self {
        case .badHandshake, .unknownPayloadType, .payloadTooLong, .truncated, .handshakeTimeout: true
        default: false
        }
    }
}

/// A Gnutella node's counters: descriptors by type and fate, connections,
/// drops and closes by reason. Every stage adds to them; anyone reads.
///
/// Thread rules: any thread; each counter is a relaxed atomic (they are
/// statistics: no counter orders any other memory access).
public final class GnutellaStatistics: Sendable {
    /// One counter (Atomic is not copyable: an array holds boxes).
    private final class Counter: Sendable {
        let value = Atomic<UInt64>(0)
    }

    private let counters: [Counter]

    private enum Slot {
        static let types = PayloadType.allCases.count
        static let received = 0  // + type index
        static let forwarded = received + types  // + type index: copies written to neighbours
        static let routed = forwarded + types  // + type index: descriptors sent on
        static let dropped = routed + types  // + DropReason
        static let closed = dropped + DropReason.allCases.count  // + CloseReason
        static let accepted = closed + CloseReason.allCases.count
        static let connectedOut = accepted + 1
        static let connectFailed = accepted + 2
        static let handshakes = accepted + 3
        static let open = accepted + 4  // gauge: handshaken connections now
        static let sendRefused = accepted + 5  // writes a connection refused
        static let logged = accepted + 6  // queries the logger recorded
        static let ttlClamped = accepted + 7
        static let bytesIn = accepted + 8
        static let ticksDropped = accepted + 9  // cleanup ticks refused (ordinary delivery)
        static let count = accepted + 10
    }

    public init() {
        counters = (0..<Slot.count).map { _ in Counter() }
    }

    @inline(__always) private func add(_ slot: Int, _ n: UInt64 = 1) {
        counters[slot].value.wrappingAdd(n, ordering: .relaxed)
    }

    func received(_ t: PayloadType) { add(Slot.received + t.index) }
    func routed(_ t: PayloadType) { add(Slot.routed + t.index) }
    func forwarded(_ t: PayloadType, _ n: Int = 1) { add(Slot.forwarded + t.index, UInt64(n)) }
    func dropped(_ r: DropReason) { add(Slot.dropped + r.rawValue) }
    func closed(_ r: CloseReason) { add(Slot.closed + r.rawValue) }
    func accepted() { add(Slot.accepted) }
    func connectedOut() { add(Slot.connectedOut) }
    func connectFailed() { add(Slot.connectFailed) }
    func handshakeDone() {
        add(Slot.handshakes)
        add(Slot.open)
    }
    func handshakenClosed() { counters[Slot.open].value.wrappingSubtract(1, ordering: .relaxed) }
    func sendRefused() { add(Slot.sendRefused) }
    func logged() { add(Slot.logged) }
    func ttlClamped(_ n: UInt64) { add(Slot.ttlClamped, n) }
    func bytesIn(_ n: Int) { add(Slot.bytesIn, UInt64(n)) }
    func tickDropped() { add(Slot.ticksDropped) }

    /// All counters now (each read relaxed: a consistent-enough picture).
    public func snapshot() -> Snapshot {
        let v = counters.map { $0.value.load(ordering: .relaxed) }
        var s = Snapshot()
        for t in PayloadType.allCases {
            s.received[t] = v[Slot.received + t.index]
            s.routed[t] = v[Slot.routed + t.index]
            s.forwarded[t] = v[Slot.forwarded + t.index]
        }
        for r in DropReason.allCases { s.dropped[r] = v[Slot.dropped + r.rawValue] }
        for r in CloseReason.allCases { s.closed[r] = v[Slot.closed + r.rawValue] }
        s.accepted = v[Slot.accepted]
        s.connectedOut = v[Slot.connectedOut]
        s.connectFailed = v[Slot.connectFailed]
        s.handshakes = v[Slot.handshakes]
        s.openConnections = v[Slot.open]
        s.sendRefused = v[Slot.sendRefused]
        s.logged = v[Slot.logged]
        s.ttlClamped = v[Slot.ttlClamped]
        s.bytesIn = v[Slot.bytesIn]
        s.cleanupTicksDropped = v[Slot.ticksDropped]
        return s
    }

    /// The counters at one moment.
    public struct Snapshot: Sendable, Equatable {
        /// Descriptors framed, by type.
        public var received: [PayloadType: UInt64] = [:]
        /// Descriptors the router sent on (once each, whatever the fan-out).
        public var routed: [PayloadType: UInt64] = [:]
        /// Descriptor copies written to neighbours, by type.
        public var forwarded: [PayloadType: UInt64] = [:]
        public var dropped: [DropReason: UInt64] = [:]
        public var closed: [CloseReason: UInt64] = [:]
        public var accepted: UInt64 = 0
        public var connectedOut: UInt64 = 0
        public var connectFailed: UInt64 = 0
        public var handshakes: UInt64 = 0
        /// Handshaken connections open now.
        public var openConnections: UInt64 = 0
        public var sendRefused: UInt64 = 0
        public var logged: UInt64 = 0
        public var ttlClamped: UInt64 = 0
        public var bytesIn: UInt64 = 0
        /// Route cleanup ticks the router's queue refused (only with
        /// ``CleanupDelivery/ordinary``: the seed's pitfall).
        public var cleanupTicksDropped: UInt64 = 0

        public init() {}

        public var receivedTotal: UInt64 { received.values.reduce(0, +) }
        public var forwardedTotal: UInt64 { forwarded.values.reduce(0, +) }
        public var badInputCloses: UInt64 {
            closed.filter { $0.key.isBadInput }.values.reduce(0, +)
        }

        /// One status line: rates since `earlier` over `seconds`, then
        /// totals. "in" counts descriptors received, "out" copies written.
        public func statusLine(since earlier: Snapshot?, seconds: Double) -> String {
            func rate(_ now: UInt64, _ then: UInt64?) -> String {
                guard let then, seconds > 0 else { return "\(now)" }
                return String(Int((Double(now &- then) / seconds).rounded())) + "/s"
            }
            var parts: [String] = []
            let types = PayloadType.allCases.map { t in
                "\(t) \(rate(received[t] ?? 0, earlier?.received[t]))"
            }
            parts.append("in: " + types.joined(separator: " "))
            parts.append("out \(rate(forwardedTotal, earlier?.forwardedTotal))")
            parts.append(
                "conns \(openConnections) (accepted \(accepted), out \(connectedOut), failed \(connectFailed))")
            let drops = DropReason.allCases.compactMap { r in (dropped[r] ?? 0) > 0 ? "\(r) \(dropped[r]!)" : nil }
            parts.append("dropped: " + (drops.isEmpty ? "none" : drops.joined(separator: " ")))
            let closes = CloseReason.allCases.compactMap { r in (closed[r] ?? 0) > 0 ? "\(r) \(closed[r]!)" : nil }
            parts.append("closed: " + (closes.isEmpty ? "none" : closes.joined(separator: " ")))
            if ttlClamped > 0 { parts.append("ttl-clamped \(ttlClamped)") }
            if sendRefused > 0 { parts.append("send-refused \(sendRefused)") }
            if cleanupTicksDropped > 0 { parts.append("cleanup-ticks-dropped \(cleanupTicksDropped)") }
            return parts.joined(separator: " | ")
        }
    }
}
