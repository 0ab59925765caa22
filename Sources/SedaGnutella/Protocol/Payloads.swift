/// Why a payload does not parse. The router drops such a descriptor and
/// counts it; the connection stays open (the stream is still in step).
public enum PayloadError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Shorter than its type's fixed part.
    case tooShort(PayloadType, need: Int, have: Int)
    /// A query's search criteria or a result's file name has no NUL.
    case missingTerminator(PayloadType)
    /// A query hit's result set runs into its servent ID.
    case resultSetOverrun(hitsDeclared: Int, hitsFound: Int)

    public var description: String {
        switch self {
        case .tooShort(let t, let need, let have): "\(t) payload of \(have) bytes, need at least \(need)"
        case .missingTerminator(let t): "\(t) payload: string without its NUL"
        case .resultSetOverrun(let d, let f): "query hit declares \(d) results, \(f) fit"
        }
    }
}

/// Pong (0x01): a servent's address and what it shares. Fixed 14 bytes:
/// port (2, LE), IPv4 address (4, big-endian), files shared (4, LE),
/// kilobytes shared (4, LE); anything after is an extension, kept.
public struct Pong: Equatable, Sendable {
    public var port: UInt16
    public var address: IPv4Address
    public var filesShared: UInt32
    public var kilobytesShared: UInt32
    public var extensions: [UInt8]

    public init(
        port: UInt16, address: IPv4Address, filesShared: UInt32 = 0, kilobytesShared: UInt32 = 0,
        extensions: [UInt8] = []
    ) {
        self.port = port
        self.address = address
        self.filesShared = filesShared
        self.kilobytesShared = kilobytesShared
        self.extensions = extensions
    }

    public var peerAddress: PeerAddress { PeerAddress(host: address, port: port) }

    public static func parse(_ b: UnsafeRawBufferPointer) throws(PayloadError) -> Pong {
        guard b.count >= GnutellaWire.pongSize else {
            throw .tooShort(.pong, need: GnutellaWire.pongSize, have: b.count)
        }
        return Pong(
            port: b.le16(0), address: IPv4Address(b.be32(2)), filesShared: b.le32(6),
            kilobytesShared: b.le32(10), extensions: Array(b[GnutellaWire.pongSize...]))
    }

    public func encode() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: GnutellaWire.pongSize)
        out.withUnsafeMutableBytes { b in
            b.putLE16(port, 0)
            b.putBE32(address.value, 2)
            b.putLE32(filesShared, 6)
            b.putLE32(kilobytesShared, 10)
        }
        return out + extensions
    }
}

/// Query (0x80): minimum speed (2, LE) and NUL-terminated search criteria;
/// bytes after the NUL are extensions, kept.
public struct Query: Equatable, Sendable {
    public var minimumSpeed: UInt16
    public var criteria: [UInt8]
    public var extensions: [UInt8]

    public init(minimumSpeed: UInt16 = 0, criteria: String, extensions: [UInt8] = []) {
        self.init(minimumSpeed: minimumSpeed, criteriaBytes: Array(criteria.utf8), extensions: extensions)
    }

    public init(minimumSpeed: UInt16, criteriaBytes: [UInt8], extensions: [UInt8] = []) {
        precondition(!criteriaBytes.contains(0), "search criteria cannot contain NUL")
        self.minimumSpeed = minimumSpeed
        criteria = criteriaBytes
        self.extensions = extensions
    }

    /// The criteria as text (invalid UTF-8 repaired).
    public var criteriaText: String { String(decoding: criteria, as: UTF8.self) }

    public static func parse(_ b: UnsafeRawBufferPointer) throws(PayloadError) -> Query {
        guard b.count >= 3 else { throw .tooShort(.query, need: 3, have: b.count) }
        guard let nul = b[2...].firstIndex(of: 0) else { throw .missingTerminator(.query) }
        return Query(minimumSpeed: b.le16(0), criteriaBytes: Array(b[2..<nul]), extensions: Array(b[(nul + 1)...]))
    }

    public func encode() -> [UInt8] {
        var out = [UInt8(truncatingIfNeeded: minimumSpeed), UInt8(truncatingIfNeeded: minimumSpeed >> 8)]
        out += criteria
        out.append(0)
        return out + extensions
    }
}

/// Push (0x40): asks the servent `serventID` to connect out to `address`
/// and offer file `fileIndex`. Fixed 26 bytes: servent ID (16), file index
/// (4, LE), IPv4 address (4, big-endian), port (2, LE).
public struct Push: Equatable, Sendable {
    public var serventID: GUID
    public var fileIndex: UInt32
    public var address: IPv4Address
    public var port: UInt16
    public var extensions: [UInt8]

    public init(serventID: GUID, fileIndex: UInt32, address: IPv4Address, port: UInt16, extensions: [UInt8] = []) {
        self.serventID = serventID
        self.fileIndex = fileIndex
        self.address = address
        self.port = port
        self.extensions = extensions
    }

    public static func parse(_ b: UnsafeRawBufferPointer) throws(PayloadError) -> Push {
        guard b.count >= GnutellaWire.pushSize else {
            throw .tooShort(.push, need: GnutellaWire.pushSize, have: b.count)
        }
        return Push(
            serventID: GUID(b, at: 0), fileIndex: b.le32(16), address: IPv4Address(b.be32(20)),
            port: b.le16(24), extensions: Array(b[GnutellaWire.pushSize...]))
    }

    public func encode() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: GnutellaWire.pushSize)
        out.withUnsafeMutableBytes { b in
            serventID.store(to: b, at: 0)
            b.putLE32(fileIndex, 16)
            b.putBE32(address.value, 20)
            b.putLE16(port, 24)
        }
        return out + extensions
    }
}

/// Query hit (0x81): number of hits (1), port (2, LE), IPv4 address (4,
/// big-endian), speed (4, LE), the result set, an optional trailer (the
/// annotated specification's vendor code, open data and private data),
/// and the responding servent's ID (16).
public struct QueryHit: Equatable, Sendable {
    /// One result: file index (4, LE), file size (4, LE), file name
    /// terminated by NUL, extension bytes (HUGE and the like) terminated by
    /// a second NUL (0.4's "double-NUL terminated" name).
    public struct Result: Equatable, Sendable {
        public var fileIndex: UInt32
        public var fileSize: UInt32
        public var name: [UInt8]
        public var extensions: [UInt8]

        public init(fileIndex: UInt32, fileSize: UInt32, name: String, extensions: [UInt8] = []) {
            self.init(fileIndex: fileIndex, fileSize: fileSize, nameBytes: Array(name.utf8), extensions: extensions)
        }

        public init(fileIndex: UInt32, fileSize: UInt32, nameBytes: [UInt8], extensions: [UInt8] = []) {
            precondition(!nameBytes.contains(0) && !extensions.contains(0), "names and extensions cannot contain NUL")
            self.fileIndex = fileIndex
            self.fileSize = fileSize
            name = nameBytes
            self.extensions = extensions
        }

        public var nameText: String { String(decoding: name, as: UTF8.self) }
    }

    public var port: UInt16
    public var address: IPv4Address
    public var speed: UInt32
    public var results: [Result]
    public var trailer: [UInt8]
    public var serventID: GUID

    public init(
        port: UInt16, address: IPv4Address, speed: UInt32, results: [Result], trailer: [UInt8] = [],
        serventID: GUID
    ) {
        precondition(results.count <= 255, "a query hit carries at most 255 results")
        self.port = port
        self.address = address
        self.speed = speed
        self.results = results
        self.trailer = trailer
        self.serventID = serventID
    }

    public static func parse(_ b: UnsafeRawBufferPointer) throws(PayloadError) -> QueryHit {
        let end = try QueryHit.walk(b) { _ in }
        var results: [Result] = []
        _ = try QueryHit.walk(b) { r in
            results.append(
                Result(
                    fileIndex: b.le32(r.lowerBound), fileSize: b.le32(r.lowerBound + 4),
                    nameBytes: Array(b[(r.lowerBound + 8)..<r.nameEnd]),
                    extensions: Array(b[(r.nameEnd + 1)..<(r.upperBound - 1)])))
        }
        let idAt = b.count - GnutellaWire.serventIDSize
        return QueryHit(
            port: b.le16(1), address: IPv4Address(b.be32(3)), speed: b.le32(7), results: results,
            trailer: Array(b[end..<idAt]), serventID: GUID(b, at: idAt))
    }

    /// One result's byte range, and where its name's NUL is.
    struct ResultRange {
        var lowerBound: Int
        var nameEnd: Int
        var upperBound: Int
    }

    /// Walks the result set without allocating; returns where it ends
    /// (the trailer's start). The one validator of query hits.
    static func walk(_ b: UnsafeRawBufferPointer, _ each: (ResultRange) -> Void) throws(PayloadError) -> Int {
        let minimum = GnutellaWire.queryHitFixedSize + GnutellaWire.serventIDSize
        guard b.count >= minimum else { throw .tooShort(.queryHit, need: minimum, have: b.count) }
        let hits = Int(b[0])
        let limit = b.count - GnutellaWire.serventIDSize
        var at = GnutellaWire.queryHitFixedSize
        for found in 0..<hits {
            // index (4) + size (4) + at least the two NULs
            guard at + 10 <= limit,
                let nameEnd = b[(at + 8)..<limit].firstIndex(of: 0),
                nameEnd + 1 < limit,
                let extEnd = b[(nameEnd + 1)..<limit].firstIndex(of: 0)
            else { throw .resultSetOverrun(hitsDeclared: hits, hitsFound: found) }
            each(ResultRange(lowerBound: at, nameEnd: nameEnd, upperBound: extEnd + 1))
            at = extEnd + 1
        }
        return at
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [UInt8(results.count)]
        out += withUnsafeBytes(of: port.littleEndian) { Array($0) }
        out += withUnsafeBytes(of: address.value.bigEndian) { Array($0) }
        out += withUnsafeBytes(of: speed.littleEndian) { Array($0) }
        for r in results {
            out += withUnsafeBytes(of: r.fileIndex.littleEndian) { Array($0) }
            out += withUnsafeBytes(of: r.fileSize.littleEndian) { Array($0) }
            out += r.name
            out.append(0)
            out += r.extensions
            out.append(0)
        }
        return out + trailer + serventID.bytes
    }
}

/// A parsed payload of any type.
public enum Payload: Equatable, Sendable {
    /// A 0.4 ping has no payload; bytes found there are extensions, kept.
    case ping(extensions: [UInt8])
    case pong(Pong)
    case query(Query)
    case queryHit(QueryHit)
    case push(Push)

    public var type: PayloadType {
        switch self {
        case .ping: .ping
        case .pong: .pong
        case .query: .query
        case .queryHit: .queryHit
        case .push: .push
        }
    }

    public init(type: PayloadType, bytes: UnsafeRawBufferPointer) throws(PayloadError) {
        switch type {
        case .ping: self = .ping(extensions: Array(bytes))
        case .pong: self = .pong(try Pong.parse(bytes))
        case .query: self = .query(try Query.parse(bytes))
        case .queryHit: self = .queryHit(try QueryHit.parse(bytes))
        case .push: self = .push(try Push.parse(bytes))
        }
    }

    public func encode() -> [UInt8] {
        switch self {
        case .ping(let e): e
        case .pong(let p): p.encode()
        case .query(let q): q.encode()
        case .queryHit(let h): h.encode()
        case .push(let p): p.encode()
        }
    }

    /// Checks a payload of `type` without allocating: the server's check of
    /// every descriptor it frames. `nil` when it is well formed.
    public static func validate(type: PayloadType, bytes b: UnsafeRawBufferPointer) -> PayloadError? {
        switch type {
        case .ping:
            return nil
        case .pong:
            return b.count >= GnutellaWire.pongSize ? nil : .tooShort(.pong, need: GnutellaWire.pongSize, have: b.count)
        case .push:
            return b.count >= GnutellaWire.pushSize ? nil : .tooShort(.push, need: GnutellaWire.pushSize, have: b.count)
        case .query:
            guard b.count >= 3 else { return .tooShort(.query, need: 3, have: b.count) }
            return b[2...].contains(0) ? nil : .missingTerminator(.query)
        case .queryHit:
            do throws(PayloadError) {
                _ = try QueryHit.walk(b) { _ in }
                return nil
            } catch {
                return error
            }
        }
    }
}

extension Descriptor {
    /// A descriptor carrying `payload`.
    public convenience init(
        id: GUID = .random(), ttl: UInt8 = GnutellaWire.defaultTTL, hops: UInt8 = 0,
        _ payload: Payload, origin: PeerID = .local, receivedAt: Int64 = 0
    ) {
        self.init(
            id: id, type: payload.type, ttl: ttl, hops: hops, payload: payload.encode(), origin: origin,
            receivedAt: receivedAt)
    }

    /// The servent ID a query hit names (its last 16 bytes) or a push
    /// targets (its first 16); nil for other types or a short payload.
    public var serventID: GUID? {
        let p = payload
        switch type {
        case .queryHit:
            return p.count >= GnutellaWire.queryHitFixedSize + GnutellaWire.serventIDSize
                ? GUID(p, at: p.count - GnutellaWire.serventIDSize) : nil
        case .push:
            return p.count >= GnutellaWire.pushSize ? GUID(p, at: 0) : nil
        default:
            return nil
        }
    }
}
