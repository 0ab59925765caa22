import Glibc

@testable import SedaHTTP

/// An output that collects the bytes (sendfile read back with pread) and
/// counts how each part was written.
struct CollectingOutput: HTTPResponseOutput {
    var bytes: [UInt8] = []
    var copies = 0
    var zeroCopyWrites = 0
    var fileWrites = 0
    /// Buffers written by reference, held as a socket write would hold them.
    var held: [HTTPBuffer] = []

    mutating func writeCopy(_ b: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: b)
        copies += 1
    }

    mutating func write(_ buffer: HTTPBuffer, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= buffer.count, "write outside the buffer")
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer.bytes[offset..<(offset + count)]))
        held.append(buffer)
        zeroCopyWrites += 1
    }

    mutating func sendFile(_ file: HTTPFileBody, offset: Int64, count: Int64) {
        var chunk = [UInt8](repeating: 0, count: Int(count))
        let n = chunk.withUnsafeMutableBytes { pread(file.descriptor, $0.baseAddress, Int(count), off_t(offset)) }
        precondition(n == Int(count), "sendfile of \(count) bytes read \(n)")
        bytes.append(contentsOf: chunk)
        fileWrites += 1
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// One response read back from the byte stream.
struct Response {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Splits `bytes` into responses; `heads[i]`: whether response i answers a
/// HEAD (no body whatever its Content-Length). Fails on anything malformed.
func responses(_ bytes: [UInt8], heads: [Bool] = []) -> [Response]? {
    var out: [Response] = []
    var i = 0
    while i < bytes.count {
        guard
            let end = (i..<(bytes.count - 3)).first(where: {
                bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10
            })
        else { return nil }
        let lines = String(decoding: bytes[i..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let code = Int(statusLine[1]) else { return nil }
        var headers: [(String, String)] = []
        for l in lines.dropFirst() {
            guard let colon = l.firstIndex(of: ":") else { return nil }
            headers.append((String(l[..<colon]), String(l[l.index(after: colon)...]).trimmingCharacters(in: " ")))
        }
        var r = Response(status: code, headers: headers, body: [])
        i = end + 4
        let isHead = out.count < heads.count && heads[out.count]
        if !isHead && code != 304, let length = r.header("Content-Length").flatMap({ Int($0) }) {
            guard i + length <= bytes.count else { return nil }
            r.body = Array(bytes[i..<(i + length)])
            i += length
        }
        out.append(r)
    }
    return out
}

extension String {
    func components(separatedBy sep: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let r = rest.firstRange(of: sep) {
            parts.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }

    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
