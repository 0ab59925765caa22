/// Gnutella 0.4 on the wire: the facts every other file reads, from the
/// Clip2/GDF annotated specification v0.4 (revision 1.6).
///
/// Byte order: every multi-byte integer is little-endian, except IPv4
/// addresses, which are in network (big-endian) order. Strings are
/// NUL-terminated. A descriptor is a 23-byte header followed by its payload;
/// the header's payload length is the only way to find the next descriptor
/// in the stream (there is no resynchronisation marker).
public enum GnutellaWire {
    /// The header: descriptor ID (16), payload type (1), TTL (1), hops (1),
    /// payload length (4, little-endian).
    public static let headerSize = 23
    /// Offsets inside the header.
    public static let typeOffset = 16
    public static let ttlOffset = 17
    public static let hopsOffset = 18
    public static let lengthOffset = 19
    /// The TTL a servent gives a new descriptor, and the bound this router
    /// enforces on TTL + hops (see ``RoutingPolicy/maxTTL``).
    public static let defaultTTL: UInt8 = 7

    /// What the connecting servent sends first.
    public static let connectRequest = Array("GNUTELLA CONNECT/0.4\n\n".utf8)
    /// What the accepting servent answers; descriptors follow at once.
    public static let connectReply = Array("GNUTELLA OK\n\n".utf8)

    /// Fixed payload sizes (a 0.4 payload may carry extensions after them;
    /// those bytes are kept and forwarded untouched).
    public static let pongSize = 14
    public static let pushSize = 26
    /// Query hit: hits (1), port (2), address (4), speed (4), then the
    /// result set, an optional vendor trailer, and the servent ID (16).
    public static let queryHitFixedSize = 11
    public static let serventIDSize = 16
}

/// The payload type byte of a descriptor header.
public enum PayloadType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case ping = 0x00
    case pong = 0x01
    case push = 0x40
    case query = 0x80
    case queryHit = 0x81

    /// Pings and queries are broadcast (flooded); the others are routed
    /// back along one path.
    public var isBroadcast: Bool { self == .ping || self == .query }

    /// Dense index, for per-type counters.
    public var index: Int {
        switch self {
        case .ping: 0
        case .pong: 1
        case .push: 2
        case .query: 3
        case .queryHit: 4
        }
    }

    public var description: String {
        switch self {
        case .ping: "ping"
        case .pong: "pong"
        case .push: "push"
        case .query: "query"
        case .queryHit: "queryhit"
        }
    }

    /// Parses the names `description` prints (trace files, the CLI).
    public init?(name: String) {
        guard let t = PayloadType.allCases.first(where: { $0.description == name }) else { return nil }
        self = t
    }
}

/// A 16-byte globally unique identifier: a descriptor ID, or a servent ID
/// (the last 16 bytes of a query hit, the first 16 of a push). Stored as
/// two words read in little-endian order, so hashing and comparing cost two
/// word operations.
public struct GUID: Hashable, Sendable, CustomStringConvertible {
    public var low: UInt64
    public var high: UInt64

    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    /// Reads 16 bytes at `offset` of `bytes` (the caller checked the bounds).
    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        low = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        high = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
    }

    /// Writes the 16 bytes at `offset`.
    @inlinable
    public func store(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBytes(of: low.littleEndian, toByteOffset: offset, as: UInt64.self)
        bytes.storeBytes(of: high.littleEndian, toByteOffset: offset + 8, as: UInt64.self)
    }

    /// A random GUID (the 0.4 specification asks only for uniqueness).
    public static func random<G: RandomNumberGenerator>(using g: inout G) -> GUID {
        GUID(low: g.next(), high: g.next())
    }

    public static func random() -> GUID {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        out.withUnsafeMutableBytes { store(to: $0, at: 0) }
        return out
    }

    public var description: String {
        bytes.map { b in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined()
    }
}

/// An IPv4 address as the Gnutella wire carries it (network byte order on
/// the wire); `value` holds a.b.c.d as a << 24 | b << 16 | c << 8 | d.
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted quad notation ("127.0.0.1").
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, let n = UInt8(p) else { return nil }
            v = v << 8 | UInt32(n)
        }
        value = v
    }

    public static let loopback = IPv4Address(127, 0, 0, 1)

    public var description: String {
        "\(value >> 24).\((value >> 16) & 0xff).\((value >> 8) & 0xff).\(value & 0xff)"
    }
}

/// A servent's address: what pongs advertise and what the catcher dials.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: IPv4Address
    public var port: UInt16

    public init(host: IPv4Address, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses "a.b.c.d:port".
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"),
            let host = IPv4Address(text[..<colon]),
            let port = UInt16(text[text.index(after: colon)...])
        else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { "\(host):\(port)" }
}

// MARK: - Little helpers over raw bytes (bounds are the caller's)

extension UnsafeRawBufferPointer {
    @inlinable func le16(_ at: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }
    @inlinable func le32(_ at: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }
    @inlinable func be32(_ at: Int) -> UInt32 { UInt32(bigEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable func putLE16(_ v: UInt16, _ at: Int) {
        storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt16.self)
    }
    @inlinable func putLE32(_ v: UInt32, _ at: Int) {
        storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt32.self)
    }
    @inlinable func putBE32(_ v: UInt32, _ at: Int) { storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt32.self) }
}
