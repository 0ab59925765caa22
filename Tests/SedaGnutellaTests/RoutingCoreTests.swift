import Testing

@testable import SedaGnutella

/// A descriptor arriving from `from` (a copy, as the framer would make).
private func arriving(_ d: Descriptor, from: PeerID) -> Descriptor {
    Descriptor(copying: d.wireBytes, origin: from, receivedAt: 0)
}

@Suite("Routing rules")
struct RoutingCoreTests {
    let a = PeerID(1), b = PeerID(2), c = PeerID(3)
    let servent = GUID(low: 77, high: 77)

    func hit(_ id: GUID, servent: GUID, ttl: UInt8 = 7) -> Descriptor {
        Descriptor(
            id: id, ttl: ttl,
            .queryHit(
                QueryHit(
                    port: 1, address: .loopback, speed: 1,
                    results: [.init(fileIndex: 1, fileSize: 1, name: "f")],
                    serventID: servent)))
    }

    @Test func pingsAndQueriesFloodWithTTLDownAndHopsUp() {
        var r = RoutingCore()
        for payload in [Payload.ping(extensions: []), .query(Query(criteria: "x"))] {
            let d = arriving(Descriptor(ttl: 7, hops: 0, payload), from: a)
            #expect(r.route(d) == .flood)
            #expect(d.ttl == 6 && d.hops == 1)
        }
    }

    @Test func duplicatesAreDroppedByTypeAndID() {
        var r = RoutingCore()
        let id = GUID(low: 9, high: 9)
        #expect(r.route(arriving(Descriptor(id: id, .ping(extensions: [])), from: a)) == .flood)
        #expect(
            r.route(arriving(Descriptor(id: id, .ping(extensions: [])), from: b)) == .drop(.duplicate),
            "same ping from another neighbour")
        #expect(
            r.route(arriving(Descriptor(id: id, .query(Query(criteria: "q"))), from: b)) == .flood,
            "a query with the ping's ID is another descriptor")
        #expect(r.route(arriving(Descriptor(id: id, .query(Query(criteria: "q"))), from: a)) == .drop(.duplicate))
    }

    @Test func nothingIsForwardedAtTTLZero() {
        var r = RoutingCore()
        let last = arriving(Descriptor(ttl: 1, hops: 6, .ping(extensions: [])), from: a)
        #expect(r.route(last) == .drop(.ttlExpired), "TTL 1 becomes 0: not forwarded")
        let dead = arriving(Descriptor(ttl: 0, hops: 3, .query(Query(criteria: "x"))), from: a)
        #expect(r.route(dead) == .drop(.ttlExpired), "arrived with TTL 0")
        // The expired request still records its ID: a copy arriving later is a duplicate.
        #expect(r.route(arriving(Descriptor(id: last.id, ttl: 5, .ping(extensions: [])), from: b)) == .drop(.duplicate))
    }

    @Test func ttlPlusHopsAboveSevenIsClampedNotDropped() {
        var r = RoutingCore()
        let greedy = arriving(Descriptor(ttl: 200, hops: 2, .ping(extensions: [])), from: a)
        #expect(r.route(greedy) == .flood)
        #expect(greedy.ttl == 4 && greedy.hops == 3, "clamped to 7 - 2 = 5, then one hop")
        let spent = arriving(Descriptor(ttl: 3, hops: 9, .query(Query(criteria: "x"))), from: a)
        #expect(r.route(spent) == .drop(.ttlExpired), "hops alone past 7: TTL 0")
        #expect(r.ttlClamped == 2)
        let fine = arriving(Descriptor(ttl: 4, hops: 3, .ping(extensions: [])), from: a)
        #expect(r.route(fine) == .flood && r.ttlClamped == 2, "exactly 7 is fine")
    }

    @Test func pongsAndQueryHitsGoBackTheWayTheirRequestCame() {
        var r = RoutingCore()
        let ping = Descriptor(id: GUID(low: 1, high: 0), .ping(extensions: []))
        let query = Descriptor(id: GUID(low: 2, high: 0), .query(Query(criteria: "x")))
        #expect(r.route(arriving(ping, from: a)) == .flood)
        #expect(r.route(arriving(query, from: b)) == .flood)
        let pong = arriving(Descriptor(id: ping.id, ttl: 3, .pong(Pong(port: 1, address: .loopback))), from: c)
        #expect(r.route(pong) == .forward(a))
        #expect(pong.ttl == 2 && pong.hops == 1)
        #expect(r.route(arriving(hit(query.id, servent: servent), from: c)) == .forward(b))
        // Several responses share their request's ID: none is a duplicate.
        #expect(r.route(arriving(hit(query.id, servent: GUID(low: 5, high: 5)), from: a)) == .forward(b))
    }

    @Test func responsesToUnseenRequestsAreDropped() {
        var r = RoutingCore()
        #expect(r.route(arriving(Descriptor(.pong(Pong(port: 1, address: .loopback))), from: a)) == .drop(.noRoute))
        #expect(r.route(arriving(hit(.random(), servent: servent), from: a)) == .drop(.noRoute))
    }

    @Test func aResponseIsNotSentBackToWhereItCameFrom() {
        var r = RoutingCore()
        let ping = Descriptor(.ping(extensions: []))
        _ = r.route(arriving(ping, from: a))
        #expect(
            r.route(arriving(Descriptor(id: ping.id, .pong(Pong(port: 1, address: .loopback))), from: a))
                == .drop(.loop))
    }

    @Test func pushesFollowTheQueryHitsServentID() {
        var r = RoutingCore()
        let query = Descriptor(.query(Query(criteria: "x")))
        _ = r.route(arriving(query, from: a))
        #expect(r.route(arriving(hit(query.id, servent: servent), from: c)) == .forward(a))
        let push = Descriptor(.push(Push(serventID: servent, fileIndex: 1, address: .loopback, port: 1)))
        #expect(r.route(arriving(push, from: a)) == .forward(c), "towards the servent, via the hit's neighbour")
        #expect(r.route(arriving(push, from: b)) == .drop(.duplicate))
        let stray = Descriptor(.push(Push(serventID: GUID(low: 1, high: 2), fileIndex: 1, address: .loopback, port: 1)))
        #expect(r.route(arriving(stray, from: a)) == .drop(.noRoute), "no hit named this servent")
    }

    @Test func ourOwnRequestsComeBackLocally() {
        var r = RoutingCore()
        let ping = Descriptor(ttl: 3, .ping(extensions: []))
        let first = r.originate(ping), second = r.originate(ping)
        #expect(first)
        #expect(!second, "an ID is used once")
        #expect(r.route(arriving(Descriptor(id: ping.id, .pong(Pong(port: 1, address: .loopback))), from: b)) == .local)
        #expect(r.route(arriving(ping, from: b)) == .drop(.duplicate), "our ping echoed back")
    }

    @Test func ourOwnRequestsLeaveWithTheirTTL() {
        var r = RoutingCore()
        let ping = Descriptor(ttl: 3, .ping(extensions: []))  // origin .local
        #expect(r.route(ping) == .flood)
        #expect(ping.ttl == 3 && ping.hops == 0, "no hop taken at home")
        #expect(r.route(arriving(Descriptor(id: ping.id, .pong(Pong(port: 1, address: .loopback))), from: b)) == .local)
    }

    @Test func routesExpireAfterTwoRotations() {
        var r = RoutingCore()
        let ping = Descriptor(.ping(extensions: []))
        _ = r.route(arriving(ping, from: a))
        r.rotate()
        #expect(
            r.route(arriving(Descriptor(id: ping.id, .pong(Pong(port: 1, address: .loopback))), from: b))
                == .forward(a),
            "half a lifetime later the route holds")
        r.rotate()
        #expect(
            r.route(arriving(Descriptor(id: ping.id, .pong(Pong(port: 1, address: .loopback))), from: b))
                == .drop(.noRoute))
        #expect(r.expired == 1 && r.rotations == 2 && r.routeCount == 0)
    }

    @Test func fullTablesRefuseNewRequestsAndStayBounded() {
        var r = RoutingCore(policy: RoutingPolicy(tableCapacity: 4))
        for _ in 0..<4 { #expect(r.route(arriving(Descriptor(.ping(extensions: [])), from: a)) == .flood) }
        #expect(r.route(arriving(Descriptor(.ping(extensions: [])), from: a)) == .drop(.tableFull))
        #expect(r.routeCount == 4)
        r.rotate()
        r.rotate()
        #expect(r.route(arriving(Descriptor(.ping(extensions: [])), from: a)) == .flood, "room again once aged out")
    }
}
