import Testing

@testable import SedaGnutella

@Suite("Route table")
struct RouteTableTests {
    let a = PeerID(1), b = PeerID(2)

    @Test func insertFindsDuplicatesInBothGenerations() {
        var t = RouteTable<Int>(capacity: 10)
        #expect(t.insert(1, route: a) == .inserted)
        #expect(t.insert(1, route: b) == .present(a), "the first route stays")
        t.rotate()
        #expect(t.insert(1, route: b) == .present(a), "still there one generation later")
        #expect(t.lookup(1) == a)
    }

    @Test func entriesExpireAfterTwoRotations() {
        var t = RouteTable<Int>(capacity: 10)
        _ = t.insert(1, route: a)
        #expect(t.rotate() == 0)
        _ = t.insert(2, route: b)
        #expect(t.rotate() == 1, "entry 1 expires")
        #expect(t.lookup(1) == nil && t.lookup(2) == b)
        #expect(t.rotate() == 1)
        #expect(t.count == 0)
    }

    @Test func capacityBoundsBothGenerations() {
        var t = RouteTable<Int>(capacity: 3)
        for k in 0..<3 { #expect(t.insert(k, route: a) == .inserted) }
        #expect(t.insert(3, route: a) == .full)
        #expect(t.insert(2, route: b) == .present(a), "a duplicate is still a duplicate when full")
        t.rotate()
        #expect(t.insert(3, route: a) == .full, "rotated entries still count")
        t.rotate()
        #expect(t.insert(3, route: a) == .inserted)
        #expect(t.count == 1)
    }

    @Test func updateRefreshesTheAge() {
        var t = RouteTable<Int>(capacity: 2)
        let u1 = t.update(1, route: a)
        #expect(u1)
        t.rotate()
        let u2 = t.update(1, route: b)
        #expect(u2, "moves to the current generation")
        t.rotate()
        #expect(t.lookup(1) == b, "survived a rotation it would not have")
        let u3 = t.update(2, route: a), u4 = t.update(3, route: a)
        #expect(u3)
        #expect(!u4, "full")
        #expect(t.count == 2)
    }
}
