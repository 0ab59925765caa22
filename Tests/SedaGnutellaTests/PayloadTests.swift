import Testing

@testable import SedaGnutella

private func parse(_ d: Descriptor) throws -> Payload { try d.parsePayload() }

@Suite("Payloads")
struct PayloadTests {
    @Test func headerLayout() {
        let id = GUID(low: 0x0706_0504_0302_0100, high: 0x0f0e_0d0c_0b0a_0908)
        let d = Descriptor(id: id, type: .query, ttl: 5, hops: 2, payload: [0, 0, 0x61, 0])
        #expect(Array(d.bytes[0..<16]) == Array(0..<16), "the ID's bytes in order")
        #expect(d.bytes[16] == 0x80 && d.bytes[17] == 5 && d.bytes[18] == 2)
        #expect(Array(d.bytes[19..<23]) == [4, 0, 0, 0], "payload length, little-endian")
        #expect(d.id == id && d.payloadLength == 4 && d.wireBytes.count == 27)
    }

    @Test func pingHasNoPayload() throws {
        let d = Descriptor(.ping(extensions: []))
        #expect(d.bytes.count == 23 && d.type == .ping)
        #expect(try parse(d) == .ping(extensions: []))
    }

    @Test func pongRoundTripAndByteOrder() throws {
        let pong = Pong(
            port: 0x1234, address: IPv4Address(192, 168, 1, 2), filesShared: 0x0102_0304,
            kilobytesShared: 77)
        let b = pong.encode()
        #expect(b.count == 14)
        #expect(Array(b[0..<2]) == [0x34, 0x12], "port little-endian")
        #expect(Array(b[2..<6]) == [192, 168, 1, 2], "address in network order")
        #expect(Array(b[6..<10]) == [4, 3, 2, 1], "files little-endian")
        #expect(try parse(Descriptor(.pong(pong))) == .pong(pong))
        let ext = Pong(port: 1, address: .loopback, extensions: [0xc3, 1, 2])
        #expect(try parse(Descriptor(.pong(ext))) == .pong(ext), "extensions after the 14 bytes are kept")
    }

    @Test func queryRoundTrip() throws {
        let q = Query(minimumSpeed: 56, criteria: "free software", extensions: Array("urn:sha1:".utf8))
        let b = q.encode()
        #expect(Array(b[0..<2]) == [56, 0])
        #expect(b[2 + 13] == 0, "criteria NUL-terminated")
        #expect(try parse(Descriptor(.query(q))) == .query(q))
        if case .query(let back) = try parse(Descriptor(.query(q))) { #expect(back.criteriaText == "free software") }
    }

    @Test func queryHitRoundTripWithResultsAndTrailer() throws {
        let servent = GUID(low: 0xdead_beef, high: 0xfeed)
        let hit = QueryHit(
            port: 6346, address: IPv4Address(10, 1, 2, 3), speed: 1000,
            results: [
                .init(fileIndex: 1, fileSize: 4096, name: "a.txt"),
                .init(fileIndex: 2, fileSize: 1 << 20, name: "b.mp3", extensions: Array("urn:x".utf8)),
                .init(fileIndex: 3, fileSize: 0, name: ""),
            ],
            trailer: Array("SEDA".utf8) + [2, 0x1c, 0x19], serventID: servent)
        let d = Descriptor(.queryHit(hit))
        #expect(d.bytes[23] == 3, "number of hits")
        #expect(try parse(d) == .queryHit(hit))
        #expect(d.serventID == servent, "the last 16 bytes")
        #expect(Payload.validate(type: .queryHit, bytes: d.payload) == nil)
    }

    @Test func pushRoundTrip() throws {
        let push = Push(serventID: GUID(low: 5, high: 6), fileIndex: 9, address: IPv4Address(1, 2, 3, 4), port: 80)
        let b = push.encode()
        #expect(b.count == 26)
        #expect(Array(b[20..<24]) == [1, 2, 3, 4] && Array(b[24..<26]) == [80, 0])
        let d = Descriptor(.push(push))
        #expect(try parse(d) == .push(push))
        #expect(d.serventID == GUID(low: 5, high: 6), "the first 16 bytes")
    }

    @Test func malformedPayloadsAreNamed() {
        func check(_ t: PayloadType, _ bytes: [UInt8], _ e: PayloadError) {
            bytes.withUnsafeBytes { b in
                #expect(Payload.validate(type: t, bytes: b) == e)
                #expect(throws: e) { try Payload(type: t, bytes: b) }
            }
        }
        check(.pong, Array(repeating: 0, count: 13), .tooShort(.pong, need: 14, have: 13))
        check(.push, Array(repeating: 0, count: 25), .tooShort(.push, need: 26, have: 25))
        check(.query, [0, 0], .tooShort(.query, need: 3, have: 2))
        check(.query, [0, 0, 0x61, 0x62], .missingTerminator(.query))
        check(.queryHit, Array(repeating: 0, count: 26), .tooShort(.queryHit, need: 27, have: 26))
        // Declares two results, carries one.
        var one = QueryHit(
            port: 1, address: .loopback, speed: 0,
            results: [.init(fileIndex: 1, fileSize: 1, name: "x")], serventID: GUID(low: 1, high: 1)
        ).encode()
        one[0] = 2
        check(.queryHit, one, .resultSetOverrun(hitsDeclared: 2, hitsFound: 1))
        // A name whose NULs would lie inside the servent ID.
        var noNul = QueryHit(port: 1, address: .loopback, speed: 0, results: [], serventID: GUID(low: 0, high: 0))
            .encode()
        noNul[0] = 1
        noNul.insert(contentsOf: [1, 0, 0, 0, 1, 0, 0, 0, 0x61, 0x62], at: 11)
        check(.queryHit, noNul, .resultSetOverrun(hitsDeclared: 1, hitsFound: 0))
    }

    @Test func addressesParseAndPrint() {
        #expect(IPv4Address("10.0.0.255") == IPv4Address(10, 0, 0, 255))
        #expect(IPv4Address("10.0.0") == nil && IPv4Address("10.0.0.256") == nil && IPv4Address("a.b.c.d") == nil)
        #expect(PeerAddress("127.0.0.1:6346") == PeerAddress(host: .loopback, port: 6346))
        #expect(PeerAddress("127.0.0.1") == nil && PeerAddress("127.0.0.1:70000") == nil)
        #expect("\(PeerAddress(host: IPv4Address(1, 2, 3, 4), port: 5))" == "1.2.3.4:5")
        #expect(PayloadType(name: "queryhit") == .queryHit && PayloadType(name: "bye") == nil)
    }
}
