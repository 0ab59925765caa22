import Testing

@testable import SedaHTTP

func testPage(_ text: String, mtime: Int64 = 1_000, inode: UInt64 = 1) -> CachedPage {
    CachedPage(
        body: HTTPBuffer(text), contentType: "text/plain",
        identity: FileIdentity(
            device: 1, inode: inode, size: Int64(text.utf8.count),
            modifiedNanoseconds: mtime * 1_000_000_000))
}

extension PageCache.Lookup {
    var page: CachedPage? {
        switch self {
        case .hit(let p), .stale(let p): p
        case .miss: nil
        }
    }
    var isHit: Bool { if case .hit = self { true } else { false } }
    var isStale: Bool { if case .stale = self { true } else { false } }
}

@Suite struct PageCacheTests {
    @Test func hitsAndMisses() {
        let cache = PageCache(capacityBytes: 1 << 20, revalidateAfter: .seconds(1))
        let p = testPage("hello")
        #expect(cache.lookup("/a", now: 0).page == nil)
        cache.insert("/a", page: p, now: 0)
        #expect(cache.lookup("/a", now: 1).page === p)
        #expect(cache.lookup("/b", now: 1).page == nil)
        let s = cache.statistics
        #expect(s.hits == 1)
        #expect(s.misses == 2)
        #expect(s.entries == 1)
    }

    @Test func evictsTheLeastRecentlyUsedToStayWithinItsBytes() {
        let body = String(repeating: "x", count: 1000)
        let one = testPage(body).footprint + 2
        let cache = PageCache(capacityBytes: one * 3, maxEntryBytes: 10_000, revalidateAfter: .seconds(100))
        for k in ["/1", "/2", "/3"] { cache.insert(k, page: testPage(body), now: 0) }
        #expect(cache.lookup("/1", now: 0).page != nil)  // /1 is now the most recent
        cache.insert("/4", page: testPage(body), now: 0)
        #expect(cache.lookup("/2", now: 0).page == nil)  // the least recent went
        #expect(cache.lookup("/1", now: 0).page != nil)
        #expect(cache.lookup("/3", now: 0).page != nil)
        #expect(cache.lookup("/4", now: 0).page != nil)
        #expect(cache.statistics.evictions == 1)
        #expect(cache.statistics.bytes <= one * 3)
    }

    @Test func refusesPagesOverTheEntryLimit() {
        let cache = PageCache(capacityBytes: 1 << 20, maxEntryBytes: 10)
        #expect(!cache.insert("/big", page: testPage("eleven bytes"), now: 0))
        #expect(cache.lookup("/big", now: 0).page == nil)
    }

    @Test func replacingAKeyKeepsOneEntry() {
        let cache = PageCache()
        let a = testPage("a"), b = testPage("b")
        cache.insert("/k", page: a, now: 0)
        cache.insert("/k", page: b, now: 0)
        #expect(cache.lookup("/k", now: 0).page === b)
        #expect(cache.statistics.entries == 1)
    }

    @Test func staleOnceThenHitsUntilRevalidated() {
        let cache = PageCache(revalidateAfter: .seconds(1))
        let p = testPage("a")
        cache.insert("/k", page: p, now: 0)
        #expect(cache.lookup("/k", now: 999_999_999).isHit)
        #expect(cache.lookup("/k", now: 1_000_000_000).isStale)  // this caller checks the file
        #expect(cache.lookup("/k", now: 1_000_000_001).isHit)  // others keep being served
        Array("/k".utf8).withUnsafeBytes { cache.revalidated($0, page: p, now: 1_500_000_000) }
        #expect(cache.lookup("/k", now: 2_400_000_000).isHit)
        #expect(cache.lookup("/k", now: 2_500_000_000).isStale)
        Array("/k".utf8).withUnsafeBytes { cache.abandonRevalidation($0, page: p) }
        #expect(cache.lookup("/k", now: 2_500_000_001).isStale)
    }

    @Test func pinnedPagesStay() {
        let body = String(repeating: "x", count: 1000)
        let cache = PageCache(
            capacityBytes: testPage(body).footprint * 2, maxEntryBytes: 10_000,
            revalidateAfter: .zero)
        cache.insert("/pinned", page: testPage(body), now: 0, pinned: true)
        for k in 0..<10 { cache.insert("/\(k)", page: testPage(body), now: 0) }
        #expect(cache.lookup("/pinned", now: 1_000_000_000_000).isHit)  // never stale, never evicted
        cache.removeAll()
        #expect(cache.lookup("/pinned", now: 0).isHit)
        #expect(cache.statistics.entries == 1)
    }

    @Test func manyKeysGrowTheTable() {
        let cache = PageCache(capacityBytes: 64 << 20, revalidateAfter: .seconds(100))
        for k in 0..<2000 { cache.insert("/file\(k)", page: testPage("\(k)"), now: 0) }
        for k in stride(from: 0, to: 2000, by: 7) {
            #expect(
                cache.lookup("/file\(k)", now: 0).page.map { String(decoding: $0.body.bytes, as: UTF8.self) } == "\(k)")
        }
        for k in 0..<1000 { Array("/file\(k)".utf8).withUnsafeBytes { cache.remove($0) } }
        #expect(cache.statistics.entries == 1000)
        #expect(cache.lookup("/file999", now: 0).page == nil)
        #expect(cache.lookup("/file1000", now: 0).page != nil)
    }
}
