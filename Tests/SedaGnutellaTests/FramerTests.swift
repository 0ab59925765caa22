import Testing

@testable import SedaGnutella

/// Frames `bytes` cut into the given chunk sizes (the rest in one chunk).
private func frame(_ bytes: [UInt8], cuts: [Int], maxPayload: Int = 4096) throws -> [Descriptor] {
    var framer = DescriptorFramer(maxPayload: maxPayload)
    var out: [Descriptor] = []
    var at = 0
    for c in cuts + [bytes.count] where at < bytes.count {
        let end = min(bytes.count, at + max(c, 0))
        try framer.feed(Array(bytes[at..<end]), origin: PeerID(7), now: 42) { out.append($0) }
        at = end
    }
    #expect(!framer.isMidDescriptor)
    return out
}

@Suite("Framer")
struct FramerTests {
    let stream: [Descriptor] = [
        Descriptor(id: GUID(low: 1, high: 1), ttl: 7, hops: 0, .ping(extensions: [])),
        Descriptor(
            id: GUID(low: 2, high: 2), ttl: 5, hops: 2,
            .pong(Pong(port: 6346, address: IPv4Address(10, 0, 0, 1), filesShared: 3, kilobytesShared: 9))),
        Descriptor(id: GUID(low: 3, high: 3), ttl: 3, hops: 4, .query(Query(minimumSpeed: 0, criteria: "seda"))),
    ]

    var bytes: [UInt8] { stream.flatMap(\.bytes) }

    @Test func severalDescriptorsInOneChunk() throws {
        let got = try frame(bytes, cuts: [])
        #expect(got.map(\.bytes) == stream.map(\.bytes))
        #expect(got.allSatisfy { $0.origin == PeerID(7) && $0.receivedAt == 42 })
        #expect(got[1].type == .pong && got[1].ttl == 5 && got[1].hops == 2 && got[1].id == GUID(low: 2, high: 2))
    }

    @Test func splitAtEveryPairOfPositions() throws {
        let all = bytes
        for a in 0...all.count {
            for b in stride(from: a, through: all.count, by: 3) {
                let got = try frame(all, cuts: [a, b - a])
                #expect(got.map(\.bytes) == stream.map(\.bytes), "cuts at \(a) and \(b)")
            }
        }
    }

    @Test func oneByteAtATime() throws {
        let got = try frame(bytes, cuts: Array(repeating: 1, count: bytes.count))
        #expect(got.map(\.bytes) == stream.map(\.bytes))
    }

    @Test func anEmptyChunkChangesNothing() throws {
        var framer = DescriptorFramer(maxPayload: 64)
        var n = 0
        try framer.feed([], origin: .local, now: 0) { _ in n += 1 }
        #expect(n == 0 && !framer.isMidDescriptor)
    }

    @Test func unknownPayloadTypeIsAFramingError() {
        var raw = stream[0].bytes
        raw[16] = 0x02  // 0.6's BYE: not 0.4
        var framer = DescriptorFramer(maxPayload: 64)
        var emitted: [Descriptor] = []
        #expect(throws: FramingError.unknownPayloadType(0x02)) {
            try framer.feed(stream[1].bytes + raw, origin: .local, now: 0) { emitted.append($0) }
        }
        #expect(emitted.count == 1, "the descriptor before the bad header was framed")
        #expect(throws: FramingError.unknownPayloadType(0x02)) {
            try framer.feed(stream[0].bytes, origin: .local, now: 0) { _ in }
        }
    }

    @Test func payloadLengthAboveTheMaximumIsRefusedBeforeAnyPayload() throws {
        let q = Descriptor(id: .random(), .query(Query(criteria: String(repeating: "x", count: 100))))
        // Exactly the maximum is fine.
        #expect(try frame(q.bytes, cuts: [], maxPayload: q.payloadLength).count == 1)
        // One byte less as the maximum: refused from the header alone.
        var framer = DescriptorFramer(maxPayload: q.payloadLength - 1)
        #expect(throws: FramingError.payloadTooLong(length: UInt32(q.payloadLength), maximum: q.payloadLength - 1)) {
            try framer.feed(Array(q.bytes[0..<23]), origin: .local, now: 0) { _ in }
        }
        // A length near 4 GB is refused without allocating it.
        var huge = stream[0].bytes
        huge[19] = 0xff
        huge[20] = 0xff
        huge[21] = 0xff
        huge[22] = 0xff
        var f2 = DescriptorFramer(maxPayload: 65536)
        #expect(throws: FramingError.payloadTooLong(length: UInt32.max, maximum: 65536)) {
            try f2.feed(huge, origin: .local, now: 0) { _ in }
        }
    }

    @Test func aTruncatedDescriptorIsVisibleAtEndOfStream() throws {
        var framer = DescriptorFramer(maxPayload: 4096)
        let b = stream[1].bytes
        var n = 0
        try framer.feed(Array(b[0..<10]), origin: .local, now: 0) { _ in n += 1 }
        #expect(framer.isMidDescriptor && framer.pendingBytes == 10, "inside the header")
        try framer.feed(Array(b[10..<30]), origin: .local, now: 0) { _ in n += 1 }
        #expect(framer.isMidDescriptor && framer.pendingBytes == 30, "inside the payload")
        try framer.feed(Array(b[30...]), origin: .local, now: 0) { _ in n += 1 }
        #expect(n == 1 && !framer.isMidDescriptor)
    }
}
