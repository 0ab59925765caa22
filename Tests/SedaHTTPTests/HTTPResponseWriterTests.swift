import Glibc
import Testing

@testable import SedaHTTP

@Suite struct HTTPResponseWriterTests {
    let date = HTTPDate(seconds: 784_111_777)
    let page = testPage("0123456789", mtime: 784_000_000)

    func conditions(ims: String? = nil, range: String? = nil, ifRange: String? = nil) -> HTTPConditions {
        var c = HTTPConditions()
        c.ifModifiedSince = ims.flatMap { Array($0.utf8).withUnsafeBytes { HTTPDate.parse($0) } }
        c.range = range.flatMap { Array($0.utf8).withUnsafeBytes { ByteRangeSpec.parse($0) } }
        if let ifRange {
            c.ifRangePresent = true
            c.ifRangeDate = Array(ifRange.utf8).withUnsafeBytes { HTTPDate.parse($0) }
        }
        return c
    }

    @Test func thePlainPathIsOneCopyAndOneZeroCopyWrite() {
        var out = CollectingOutput()
        let s = HTTPResponseWriter.writePage(
            page, isHead: false, keepAlive: true, conditions: HTTPConditions(),
            date: date, to: &out)
        #expect(s == .ok)
        #expect(out.copies == 1)
        #expect(out.zeroCopyWrites == 1)
        #expect(out.held.first === page.body)
        let expected =
            "HTTP/1.1 200 OK\r\nServer: seda\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            + "Content-Type: text/plain\r\nContent-Length: 10\r\nLast-Modified: \(page.lastModified.string)\r\n"
            + "Accept-Ranges: bytes\r\nConnection: keep-alive\r\n\r\n0123456789"
        #expect(out.text == expected)
    }

    @Test func headAndClose() {
        var out = CollectingOutput()
        HTTPResponseWriter.writePage(
            page, isHead: true, keepAlive: false, conditions: HTTPConditions(), date: date,
            to: &out)
        let r = responses(out.bytes, heads: [true])!
        #expect(r.count == 1)
        #expect(r[0].header("Content-Length") == "10")
        #expect(r[0].header("Connection") == "close")
        #expect(r[0].body.isEmpty)
        #expect(out.zeroCopyWrites == 0)
    }

    @Test func notModified() {
        var out = CollectingOutput()
        let s = HTTPResponseWriter.writePage(
            page, isHead: false, keepAlive: true,
            conditions: conditions(ims: page.lastModified.string), date: date, to: &out)
        #expect(s == .notModified)
        let r = responses(out.bytes)!
        #expect(r[0].status == 304)
        #expect(r[0].header("Content-Length") == nil)
        #expect(r[0].header("Last-Modified") == page.lastModified.string)
        // Older than the page, or in the future (ignored): the full page.
        for ims in ["Sat, 01 Jan 1994 00:00:00 GMT", "Fri, 01 Jan 2100 00:00:00 GMT", "garbage"] {
            var o = CollectingOutput()
            #expect(
                HTTPResponseWriter.writePage(
                    page, isHead: false, keepAlive: true, conditions: conditions(ims: ims),
                    date: date, to: &o) == .ok)
        }
    }

    @Test func ranges() {
        func send(_ c: HTTPConditions) -> Response {
            var out = CollectingOutput()
            HTTPResponseWriter.writePage(page, isHead: false, keepAlive: true, conditions: c, date: date, to: &out)
            return responses(out.bytes)![0]
        }
        let r = send(conditions(range: "bytes=2-4"))
        #expect(r.status == 206)
        #expect(r.bodyText == "234")
        #expect(r.header("Content-Range") == "bytes 2-4/10")
        #expect(send(conditions(range: "bytes=-3")).bodyText == "789")
        #expect(send(conditions(range: "bytes=8-")).bodyText == "89")
        let unsat = send(conditions(range: "bytes=10-"))
        #expect(unsat.status == 416)
        #expect(unsat.header("Content-Range") == "bytes */10")
        // Several ranges: refused by sending the whole page.
        let multi = send(conditions(range: "bytes=0-1,4-5"))
        #expect(multi.status == 200)
        #expect(multi.bodyText == "0123456789")
        // If-Range: the range only while the date matches.
        #expect(send(conditions(range: "bytes=0-0", ifRange: page.lastModified.string)).status == 206)
        #expect(send(conditions(range: "bytes=0-0", ifRange: "Sun, 06 Nov 1994 08:49:37 GMT")).status == 200)
        #expect(send(conditions(range: "bytes=0-0", ifRange: "\"some-etag\"")).status == 200)
    }

    @Test func errorsCarryTheirHeaders() {
        var out = CollectingOutput()
        HTTPResponseWriter.writeError(.methodNotAllowed, keepAlive: false, date: date, extra: .allowGetHead, to: &out)
        HTTPResponseWriter.writeError(
            .serviceUnavailable, keepAlive: true, date: date,
            extra: .retryAfter(seconds: 3), to: &out)
        let loc = Array("/dir/".utf8)
        loc.withUnsafeBytes { l in
            _ = HTTPResponseWriter.writeError(
                .movedPermanently, keepAlive: true, date: date, extra: .location(l),
                to: &out)
        }
        let r = responses(out.bytes)!
        #expect(r.map(\.status) == [405, 503, 301])
        #expect(r[0].header("Allow") == "GET, HEAD")
        #expect(r[0].header("Connection") == "close")
        #expect(r[1].header("Retry-After") == "3")
        #expect(r[1].header("Connection") == "keep-alive")
        #expect(r[2].header("Location") == "/dir/")
        #expect(r[0].bodyText.contains("405 Method Not Allowed"))
    }

    @Test func largeFilesGoOutBySendfile() {
        let tree = TempTree()
        tree.write("big", "abcdefghij")
        let fd = open("\(tree.path)/big", O_RDONLY)
        let file = HTTPFileBody(adopting: fd, size: 10)
        let id = FileIdentity(device: 1, inode: 2, size: 10, modifiedNanoseconds: 784_000_000_000_000_000)
        var out = CollectingOutput()
        var c = HTTPConditions()
        c.range = .span(first: 3, last: 5)
        HTTPResponseWriter.writeFile(
            file, contentType: "text/plain", identity: id, isHead: false, keepAlive: true,
            conditions: c, date: date, to: &out)
        #expect(out.fileWrites == 1)
        #expect(responses(out.bytes)![0].bodyText == "def")
    }
}
