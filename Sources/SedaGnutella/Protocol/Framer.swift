/// Why a connection's byte stream cannot be framed any further. The stream
/// has no resynchronisation marker, so either error ends the connection.
public enum FramingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A header names a payload type 0.4 does not define. (The length would
    /// still let us skip it, but a router cannot route what it does not
    /// know, and a stream that went out of step looks exactly like this.)
    case unknownPayloadType(UInt8)
    /// A header announces more payload than the configured maximum.
    case payloadTooLong(length: UInt32, maximum: Int)

    public var description: String {
        switch self {
        case .unknownPayloadType(let t): "unknown payload type 0x\(String(t, radix: 16))"
        case .payloadTooLong(let n, let max): "payload length \(n) above the maximum \(max)"
        }
    }
}

/// Cuts a connection's byte stream into descriptors, incrementally: a
/// descriptor may be split anywhere across chunks, and a chunk may hold
/// several.
///
/// Copies: every byte is copied once, from the chunk (the transport's
/// receive buffer, valid only during the call) straight into the
/// ``Descriptor`` that will carry it through the stages and out to every
/// neighbour. A header split across chunks is gathered in 23 bytes inside
/// the framer first; a payload split across chunks is written into its
/// descriptor as it arrives. Nothing else is buffered, so a connection's
/// framing state is at most one partial descriptor of at most
/// `maxPayload` bytes.
///
/// Thread rules: a value type, owned by its connection's session.
public struct DescriptorFramer: Sendable {
    /// The largest payload accepted.
    public let maxPayload: Int

    private var header: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes; 23 used
    private var headerFill = 0
    private var partial: Descriptor?
    private var partialFill = 0
    private var failure: FramingError?

    /// Descriptors framed so far.
    public private(set) var framed: UInt64 = 0

    public init(maxPayload: Int) {
        precondition(maxPayload >= 0, "maxPayload must not be negative")
        self.maxPayload = maxPayload
    }

    /// Whether a descriptor has begun and not ended: at end of stream this
    /// is a truncated descriptor.
    public var isMidDescriptor: Bool { headerFill > 0 || partial != nil }

    /// Bytes of the unfinished descriptor received so far.
    public var pendingBytes: Int { partial != nil ? partialFill : headerFill }

    /// Frames `chunk`, calling `emit` with each complete descriptor in
    /// stream order. Throws at the first bad header (descriptors before it
    /// in the chunk have been emitted); after a throw every call throws the
    /// same error.
    public mutating func feed(
        _ chunk: UnsafeRawBufferPointer, origin: PeerID, now: Int64,
        _ emit: (Descriptor) -> Void
    ) throws(FramingError) {
        if let failure { throw failure }
        let n = chunk.count
        let hsize = GnutellaWire.headerSize
        var i = 0
        while i < n {
            if let d = partial {
                let take = min(n - i, d.storage.count - partialFill)
                UnsafeMutableRawBufferPointer(rebasing: d.storage[partialFill..<(partialFill + take)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk[i..<(i + take)]))
                partialFill += take
                i += take
                if partialFill == d.storage.count {
                    partial = nil
                    partialFill = 0
                    framed += 1
                    emit(d)
                }
            } else if headerFill == 0 && n - i >= hsize {
                // The whole header is in the chunk: read it in place.
                let length = try check(
                    DescriptorFramer.header(
                        UnsafeRawBufferPointer(rebasing: chunk[i..<(i + hsize)]),
                        maxPayload: maxPayload))
                let total = hsize + length
                let d = Descriptor(uninitializedPayload: length, origin: origin, receivedAt: now)
                let take = min(total, n - i)
                UnsafeMutableRawBufferPointer(rebasing: d.storage[0..<take])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk[i..<(i + take)]))
                i += take
                if take == total {
                    framed += 1
                    emit(d)
                } else {
                    partial = d
                    partialFill = take
                }
            } else {
                // Gather a header split across chunks.
                let take = min(hsize - headerFill, n - i)
                withUnsafeMutableBytes(of: &header) { h in
                    UnsafeMutableRawBufferPointer(rebasing: h[headerFill..<(headerFill + take)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk[i..<(i + take)]))
                }
                headerFill += take
                i += take
                if headerFill == hsize {
                    let gathered = header
                    let length = try check(
                        withUnsafeBytes(of: gathered) { h in
                            DescriptorFramer.header(
                                UnsafeRawBufferPointer(rebasing: h[0..<hsize]), maxPayload: maxPayload)
                        })
                    let d = Descriptor(uninitializedPayload: length, origin: origin, receivedAt: now)
                    withUnsafeBytes(of: gathered) { h in
                        UnsafeMutableRawBufferPointer(rebasing: d.storage[0..<hsize])
                            .copyMemory(from: UnsafeRawBufferPointer(rebasing: h[0..<hsize]))
                    }
                    headerFill = 0
                    if length == 0 {
                        framed += 1
                        emit(d)
                    } else {
                        partial = d
                        partialFill = hsize
                    }
                }
            }
        }
    }

    /// Validates a complete header: its payload length, or why not.
    static func header(_ h: UnsafeRawBufferPointer, maxPayload: Int) -> Result<Int, FramingError> {
        let type = h[GnutellaWire.typeOffset]
        guard PayloadType(rawValue: type) != nil else { return .failure(.unknownPayloadType(type)) }
        let length = h.le32(GnutellaWire.lengthOffset)
        guard UInt64(length) <= UInt64(maxPayload) else {
            return .failure(.payloadTooLong(length: length, maximum: maxPayload))
        }
        return .success(Int(length))
    }

    /// Unwraps a header check, remembering a failure for later calls.
    private mutating func check(_ r: Result<Int, FramingError>) throws(FramingError) -> Int {
        switch r {
        case .success(let n): return n
        case .failure(let e):
            failure = e
            throw e
        }
    }

    public mutating func feed(
        _ chunk: [UInt8], origin: PeerID, now: Int64,
        _ emit: (Descriptor) -> Void
    ) throws(FramingError) {
        var failed: FramingError?
        chunk.withUnsafeBytes { p in
            do throws(FramingError) {
                try feed(p, origin: origin, now: now, emit)
            } catch {
                failed = error
            }
        }
        if let failed { throw failed }
    }
}
