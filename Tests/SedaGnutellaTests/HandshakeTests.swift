import Testing

@testable import SedaGnutella

@Suite("Handshake")
struct HandshakeTests {
    let connect = Array("GNUTELLA CONNECT/0.4\n\n".utf8)
    let ok = Array("GNUTELLA OK\n\n".utf8)

    @Test func acceptingSideTakesTheRequestInOneChunk() {
        var h = Handshake(role: .accepting)
        #expect(h.reply == ok)
        #expect(h.feed(connect) == .done(consumed: connect.count))
        #expect(h.isComplete)
    }

    @Test func splitAnywhereItStillCompletes() {
        for cut in 1..<connect.count {
            var h = Handshake(role: .accepting)
            #expect(h.feed(Array(connect[..<cut])) == .needMore)
            #expect(h.bytesMatched == cut)
            #expect(h.feed(Array(connect[cut...])) == .done(consumed: connect.count - cut))
        }
        var h = Handshake(role: .accepting)
        for (i, b) in connect.enumerated() {
            #expect(h.feed([b]) == (i == connect.count - 1 ? .done(consumed: 1) : .needMore))
        }
    }

    @Test func descriptorsMayFollowInTheSameChunk() {
        var h = Handshake(role: .connecting)
        #expect(h.reply == connect, "the dialling side sends CONNECT")
        let ping = Descriptor(id: GUID(low: 1, high: 2), .ping(extensions: [])).bytes
        #expect(h.feed(ok + ping) == .done(consumed: ok.count))
    }

    @Test func garbageFailsAtTheFirstWrongByte() {
        var h = Handshake(role: .accepting)
        #expect(h.feed(Array("GNUTELLA CONNECT/0.4\n".utf8)) == .needMore)
        #expect(h.feed(Array("X\n".utf8)) == .failed(offset: 0))
        #expect(h.isFailed)
        #expect(h.feed(connect) == .failed(offset: 0), "a failed handshake stays failed")

        var http = Handshake(role: .accepting)
        #expect(http.feed(Array("GET / HTTP/1.1\r\n\r\n".utf8)) == .failed(offset: 1), "G matches, E does not")

        var v06 = Handshake(role: .accepting)
        #expect(v06.feed(Array("GNUTELLA CONNECT/0.6\r\n".utf8)) == .failed(offset: 19), "0.6 is refused")
    }

    @Test func theDiallerWantsOKNotAnotherConnect() {
        var h = Handshake(role: .connecting)
        #expect(h.feed(connect) == .failed(offset: 9))
    }
}
