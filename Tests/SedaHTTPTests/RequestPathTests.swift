import Testing

@testable import SedaHTTP

@Suite struct RequestPathTests {
    @Test func normalises() {
        let cases: [(String, String)] = [
            ("/", "/"), ("/a", "/a"), ("/a/", "/a/"), ("//a//b", "/a/b"), ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"), ("/a/b/..", "/a/"), ("/a/.", "/a/"), ("/./", "/"), ("/a/%62", "/a/b"),
            ("/%7Euser", "/~user"), ("/a%20b", "/a b"), ("/a/%2e/b", "/a/b"), ("/a/b/%2E%2e/c", "/a/c"),
            ("/...", "/..."), ("/a..b", "/a..b"), ("/caf%C3%A9", "/café"), ("/a/..//b", "/b"),
        ]
        for (input, expected) in cases {
            #expect(RequestPath.normalized(input) == expected, "\(input)")
        }
    }

    @Test func refusesEscapesAndBadEncodings() {
        for bad in [
            "", "a", "/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/etc/passwd", "/%2E%2E", "/a/%2e%2e/%2e%2e/b",
            "/a%2fb", "/a%2F..%2Fb", "/..%2fetc", "/a%00b", "/%00", "/a%", "/a%4", "/a%zz", "/a\u{1}b",
            "/a%0ab", "/a%7f", "/.%2e/x", "/%2e./x",
        ] {
            #expect(RequestPath.normalized(bad) == nil, "\(bad.debugDescription)")
        }
    }

    @Test func neverLongerThanTheInput() {
        for input in ["/a/b/c", "/%41%42", "//////x", "/a/./././b"] {
            if let out = RequestPath.normalized(input) { #expect(out.utf8.count <= input.utf8.count) }
        }
    }
}
