import Testing

@testable import SedaHTTP

@Suite struct HTTPDateTests {
    @Test func formatsIMFFixdate() {
        #expect(HTTPDate(seconds: 0).string == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate(seconds: 784_111_777).string == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate(seconds: 951_782_400).string == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate(seconds: 4_102_444_799).string == "Thu, 31 Dec 2099 23:59:59 GMT")
        #expect(HTTPDate(seconds: -1).string == "Wed, 31 Dec 1969 23:59:59 GMT")
    }

    func parse(_ s: String) -> Int64? {
        Array(s.utf8).withUnsafeBytes { HTTPDate.parse($0) }
    }

    @Test func parsesTheThreeForms() {
        #expect(parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(parse("Sunday, 06-Nov-94 08:49:37 GMT") == 784_111_777)
        #expect(parse("Sun Nov  6 08:49:37 1994") == 784_111_777)
        #expect(parse("Tue, 29 Feb 2000 00:00:00 GMT") == 951_782_400)
    }

    @Test func refusesNonDates() {
        for bad in [
            "", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nox 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT", "\"etag\"", "Sun, 06 Nov 1994 08:49:37 GMTx",
        ] {
            #expect(parse(bad) == nil, "\(bad)")
        }
    }

    @Test func roundTripsOverAWideRange() {
        var s: Int64 = 0
        while s < 4_102_444_800 {
            let d = HTTPDate(seconds: s)
            #expect(parse(d.string) == s)
            s += 86_400 * 37 + 3_661
        }
    }

    @Test func cacheReformatsOncePerSecond() {
        final class Box: @unchecked Sendable { var now: Int64 = 1_000 }
        let box = Box()
        var cache = HTTPDateCache(now: { box.now })
        #expect(cache.current().seconds == 1_000)
        box.now = 1_001
        #expect(cache.current().string == HTTPDate(seconds: 1_001).string)
    }
}

@Suite struct ByteRangeTests {
    func spec(_ s: String) -> ByteRangeSpec? { Array(s.utf8).withUnsafeBytes { ByteRangeSpec.parse($0) } }

    @Test func parses() {
        #expect(spec("bytes=0-99") == .span(first: 0, last: 99))
        #expect(spec("bytes=100-") == .span(first: 100, last: nil))
        #expect(spec("bytes=-5") == .suffix(5))
        #expect(spec("Bytes= 1-2 ") == .span(first: 1, last: 2))
        #expect(spec("bytes=0-1,5-6") == .multiple)
        for bad in [
            "", "bytes=", "bytes=a-b", "items=0-1", "bytes=5-1", "bytes=-", "bytes=1-2x",
            "bytes=99999999999999999999-",
        ] {
            #expect(spec(bad) == nil, "\(bad)")
        }
    }

    @Test func resolves() {
        #expect(ByteRangeSpec.span(first: 0, last: 99).resolve(size: 50)! == (0, 50))
        #expect(ByteRangeSpec.span(first: 10, last: 19).resolve(size: 50)! == (10, 10))
        #expect(ByteRangeSpec.span(first: 50, last: nil).resolve(size: 50) == nil)
        #expect(ByteRangeSpec.suffix(10).resolve(size: 50)! == (40, 10))
        #expect(ByteRangeSpec.suffix(100).resolve(size: 50)! == (0, 50))
        #expect(ByteRangeSpec.suffix(0).resolve(size: 50) == nil)
        #expect(ByteRangeSpec.suffix(5).resolve(size: 0) == nil)
    }
}
