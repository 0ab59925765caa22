@testable import SedaHTTP

/// A request head copied out of the parser's callback (whose views die with it).
struct SeenRequest: Equatable {
    var method: HTTPMethod
    var version: HTTPVersion
    var keepAlive: Bool
    var sequence: Int
    var failure: Int?
    var target: String
    var path: String
    var query: String?
    var host: String?
    var ifModifiedSince: String?
    var range: String?
    var ifRange: String?

    init(_ h: HTTPRequestHead) {
        func s(_ v: UnsafeRawBufferPointer?) -> String? { v.map { String(decoding: $0, as: UTF8.self) } }
        method = h.method
        version = h.version
        keepAlive = h.keepAlive
        sequence = h.sequence
        failure = h.failure?.code
        target = h.targetString
        path = h.pathString
        query = s(h.query)
        host = s(h.host)
        ifModifiedSince = s(h.ifModifiedSince)
        range = s(h.range)
        ifRange = s(h.ifRange)
    }
}

/// Feeds `chunks` one by one and returns what the parser handed over and its last status.
func parse(
    _ chunks: [String], limits: HTTPLimits = HTTPLimits(),
    pauseAfter: Set<Int> = []
) -> (requests: [SeenRequest], status: HTTPParserStatus, parser: HTTPRequestParser) {
    parse(chunks.map { Array($0.utf8) }, limits: limits, pauseAfter: pauseAfter)
}

func parse(
    _ chunks: [[UInt8]], limits: HTTPLimits = HTTPLimits(),
    pauseAfter: Set<Int> = []
) -> (requests: [SeenRequest], status: HTTPParserStatus, parser: HTTPRequestParser) {
    let parser = HTTPRequestParser(limits: limits)
    var seen: [SeenRequest] = []
    var status = HTTPParserStatus.needMore
    for chunk in chunks {
        status = chunk.withUnsafeBytes { bytes in
            parser.feed(bytes) { head in
                seen.append(SeenRequest(head))
                return pauseAfter.contains(head.sequence) ? .pause : .proceed
            }
        }
    }
    return (seen, status, parser)
}

/// Every split of `text` into two chunks, and into single bytes.
func splits(_ text: String) -> [[String]] {
    let bytes = Array(text.utf8)
    var out: [[String]] = []
    for i in 1..<bytes.count {
        out.append([String(decoding: bytes[..<i], as: UTF8.self), String(decoding: bytes[i...], as: UTF8.self)])
    }
    out.append(bytes.map { String(decoding: [$0], as: UTF8.self) })
    return out
}
