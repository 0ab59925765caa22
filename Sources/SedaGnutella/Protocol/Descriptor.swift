/// Identifies one connection to a neighbour for the lifetime of the
/// process (the transport's connection ID). ``local`` stands for this
/// servent itself: the origin of descriptors it makes, and the route of
/// responses meant for it.
public struct PeerID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static let local = PeerID(0)
    public static func < (a: PeerID, b: PeerID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { self == .local ? "local" : "#\(rawValue)" }
}

/// What the Gnutella stages carry through their queues: descriptors, and
/// the ticks of their timers. A class hierarchy (Seda events are objects);
/// ``kind`` says which subclass, so a handler switches on a stored byte
/// rather than a dynamic cast.
///
/// Thread rules: immutable once enqueued, except as ``Descriptor`` says.
public class GnutellaEvent: @unchecked Sendable {
    // @unchecked: non-final (the subclasses are the events); every stored
    // property is immutable.
    public enum Kind: UInt8, Sendable {
        /// A ``Descriptor``.
        case descriptor
        /// A ``Tick``.
        case tick
    }

    public let kind: Kind

    init(kind: Kind) { self.kind = kind }
}

/// A periodic timer's event: what the stage should do now.
public final class Tick: GnutellaEvent, @unchecked Sendable {
    public enum Job: Sendable, Equatable {
        /// The router ages its route tables by one generation.
        case routeCleanup
        /// The catcher checks its connection count and dials or pings.
        case catcher
        /// The server closes connections whose handshake is late.
        case handshakeSweep
    }

    public let job: Job

    public init(_ job: Job) {
        self.job = job
        super.init(kind: .tick)
    }
}

/// One Gnutella descriptor: the 23-byte header and its payload in one
/// contiguous buffer owned by this object, exactly as on the wire, so that
/// forwarding writes the same bytes to every neighbour without copying
/// (the transport retains the descriptor until they are sent).
///
/// Thread rules: the server stage makes it; the router may change ``ttl``
/// and ``hops`` (once, before handing it to anyone else: queues give the
/// happens-before); after that it is read-only, shared by every pending
/// write.
public final class Descriptor: GnutellaEvent, @unchecked Sendable {
    // @unchecked: the buffer is written only before the descriptor is
    // shared (see the thread rules above).

    /// Header and payload, `headerSize + payloadLength` bytes.
    public let storage: UnsafeMutableRawBufferPointer
    /// The connection it arrived on (``PeerID/local`` for ours).
    public let origin: PeerID
    /// When the server framed it (the runtime clock's nanoseconds); 0 if unknown.
    public let receivedAt: Int64

    /// Allocates a descriptor of `payloadLength` bytes of payload; the
    /// caller fills every byte before sharing it.
    init(uninitializedPayload payloadLength: Int, origin: PeerID, receivedAt: Int64) {
        precondition(payloadLength >= 0 && payloadLength <= Int(UInt32.max), "payload length \(payloadLength)")
        storage = .allocate(byteCount: GnutellaWire.headerSize + payloadLength, alignment: 8)
        self.origin = origin
        self.receivedAt = receivedAt
        super.init(kind: .descriptor)
    }

    deinit { storage.deallocate() }

    /// A descriptor with the given header fields and payload bytes.
    public convenience init(
        id: GUID, type: PayloadType, ttl: UInt8, hops: UInt8,
        payload: UnsafeRawBufferPointer, origin: PeerID = .local, receivedAt: Int64 = 0
    ) {
        self.init(uninitializedPayload: payload.count, origin: origin, receivedAt: receivedAt)
        id.store(to: storage, at: 0)
        storage[GnutellaWire.typeOffset] = type.rawValue
        storage[GnutellaWire.ttlOffset] = ttl
        storage[GnutellaWire.hopsOffset] = hops
        storage.putLE32(UInt32(payload.count), GnutellaWire.lengthOffset)
        if payload.count > 0 {
            UnsafeMutableRawBufferPointer(rebasing: storage[GnutellaWire.headerSize...]).copyMemory(from: payload)
        }
    }

    /// A descriptor with the given header fields and payload bytes.
    public convenience init(
        id: GUID, type: PayloadType, ttl: UInt8, hops: UInt8, payload: [UInt8],
        origin: PeerID = .local, receivedAt: Int64 = 0
    ) {
        self.init(uninitializedPayload: payload.count, origin: origin, receivedAt: receivedAt)
        id.store(to: storage, at: 0)
        storage[GnutellaWire.typeOffset] = type.rawValue
        storage[GnutellaWire.ttlOffset] = ttl
        storage[GnutellaWire.hopsOffset] = hops
        storage.putLE32(UInt32(payload.count), GnutellaWire.lengthOffset)
        payload.withUnsafeBytes { p in
            if p.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: storage[GnutellaWire.headerSize...]).copyMemory(from: p)
            }
        }
    }

    /// A copy of another descriptor's bytes arriving from `origin` (tests,
    /// and the in-process transport's receiving side).
    public convenience init(copying bytes: UnsafeRawBufferPointer, origin: PeerID, receivedAt: Int64) {
        precondition(bytes.count >= GnutellaWire.headerSize, "a descriptor has a 23-byte header")
        self.init(uninitializedPayload: bytes.count - GnutellaWire.headerSize, origin: origin, receivedAt: receivedAt)
        storage.copyMemory(from: bytes)
    }

    // MARK: Header fields

    public var id: GUID { GUID(UnsafeRawBufferPointer(storage), at: 0) }

    /// The payload type; always a known one (the framer refuses others).
    public var type: PayloadType { PayloadType(rawValue: storage[GnutellaWire.typeOffset])! }

    public var ttl: UInt8 {
        get { storage[GnutellaWire.ttlOffset] }
        set { storage[GnutellaWire.ttlOffset] = newValue }
    }

    public var hops: UInt8 {
        get { storage[GnutellaWire.hopsOffset] }
        set { storage[GnutellaWire.hopsOffset] = newValue }
    }

    public var payloadLength: Int { storage.count - GnutellaWire.headerSize }

    /// The payload bytes (valid while the descriptor lives).
    public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage[GnutellaWire.headerSize...])
    }

    /// Header and payload, as sent.
    public var wireBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }

    /// A copy of the wire bytes.
    public var bytes: [UInt8] { Array(wireBytes) }

    /// Parses the payload (see ``Payload``).
    public func parsePayload() throws(PayloadError) -> Payload {
        try Payload(type: type, bytes: payload)
    }
}

extension Descriptor: CustomStringConvertible {
    public var description: String {
        "\(type) \(id) ttl \(ttl) hops \(hops) len \(payloadLength) from \(origin)"
    }
}
