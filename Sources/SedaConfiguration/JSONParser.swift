/// A strict JSON parser (RFC 8259) for configuration files, written for the
/// messages: an error says where, by line and column, and what was expected
/// there ("line 3, column 20: expected a value, found ','"). It keeps `true`
/// apart from `1` and an integer apart from a number with a fraction, and
/// refuses a member name given twice in one object (which JSON parsers
/// resolve differently, so the file would not say what it means).
struct JSONParser {
    /// Where and why the text is not JSON.
    struct Failure: Error, CustomStringConvertible {
        var line: Int
        var column: Int
        var reason: String
        var description: String { "line \(line), column \(column): \(reason)" }
    }

    private let bytes: [UInt8]
    private var at = 0
    private var depth = 0

    /// Nesting deeper than this is refused rather than risk the stack.
    static let maxDepth = 512

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Parses one JSON text (one value, whitespace around it).
    static func parse(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        var p = JSONParser(bytes)
        p.skipSpace()
        let v = try p.value()
        p.skipSpace()
        if p.at < p.bytes.count { throw p.failure("expected the end of the text") }
        return v
    }

    // MARK: - Values

    private mutating func value() throws(Failure) -> JSONValue {
        guard at < bytes.count else { throw failure("expected a value") }
        switch bytes[at] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw failure("expected a value")
        }
    }

    private mutating func object() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        at += 1  // {
        var members: [String: JSONValue] = [:]
        skipSpace()
        if peek(UInt8(ascii: "}")) {
            at += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard peek(UInt8(ascii: "\"")) else { throw failure("expected a member name in double quotes") }
            let nameAt = at
            let name = try string()
            skipSpace()
            guard peek(UInt8(ascii: ":")) else { throw failure("expected ':' after member name \"\(name)\"") }
            at += 1
            skipSpace()
            let v = try value()
            if members[name] != nil {
                throw failure("member \"\(name)\" appears twice in one object", at: nameAt)
            }
            members[name] = v
            skipSpace()
            if peek(UInt8(ascii: ",")) {
                at += 1
                continue
            }
            if peek(UInt8(ascii: "}")) {
                at += 1
                return .object(members)
            }
            throw failure("expected ',' or '}' after a member")
        }
    }

    private mutating func array() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        at += 1  // [
        var items: [JSONValue] = []
        skipSpace()
        if peek(UInt8(ascii: "]")) {
            at += 1
            return .array(items)
        }
        while true {
            skipSpace()
            items.append(try value())
            skipSpace()
            if peek(UInt8(ascii: ",")) {
                at += 1
                continue
            }
            if peek(UInt8(ascii: "]")) {
                at += 1
                return .array(items)
            }
            throw failure("expected ',' or ']' after an element")
        }
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        if depth > Self.maxDepth { throw failure("nested deeper than \(Self.maxDepth) levels") }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard at + w.count <= bytes.count, bytes[at..<(at + w.count)].elementsEqual(w) else {
            throw failure("expected a value")
        }
        at += w.count
    }

    // MARK: - Numbers

    private mutating func number() throws(Failure) -> JSONValue {
        let start = at
        if peek(UInt8(ascii: "-")) { at += 1 }
        guard at < bytes.count, isDigit(bytes[at]) else { throw failure("expected a digit") }
        if bytes[at] == UInt8(ascii: "0") {
            at += 1
            if at < bytes.count, isDigit(bytes[at]) { throw failure("a number cannot start with 0") }
        } else {
            while at < bytes.count, isDigit(bytes[at]) { at += 1 }
        }
        var integral = true
        if peek(UInt8(ascii: ".")) {
            integral = false
            at += 1
            guard at < bytes.count, isDigit(bytes[at]) else { throw failure("expected a digit after '.'") }
            while at < bytes.count, isDigit(bytes[at]) { at += 1 }
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            integral = false
            at += 1
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { at += 1 }
            guard at < bytes.count, isDigit(bytes[at]) else { throw failure("expected a digit in the exponent") }
            while at < bytes.count, isDigit(bytes[at]) { at += 1 }
        }
        let text = String(decoding: bytes[start..<at], as: UTF8.self)
        if integral, let i = Int(text) { return .int(i) }
        guard let d = Double(text), d.isFinite else {
            throw failure("number \(text) is out of range", at: start)
        }
        return .double(d)
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    // MARK: - Strings

    private mutating func string() throws(Failure) -> String {
        at += 1  // "
        var out: [UInt8] = []
        while true {
            guard at < bytes.count else { throw failure("unterminated string") }
            let b = bytes[at]
            switch b {
            case UInt8(ascii: "\""):
                at += 1
                // The text was checked as UTF-8 before parsing (see parse(file:)).
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                at += 1
                guard at < bytes.count else { throw failure("unterminated string") }
                let e = bytes[at]
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): out += try unicodeEscape()
                default: throw failure("unknown escape '\\\(Character(Unicode.Scalar(e)))'", at: at - 2)
                }
            case 0x00..<0x20:
                throw failure("a control character must be escaped in a string")
            default:
                out.append(b)
                at += 1
            }
        }
    }

    /// After `\u`: four hex digits, a surrogate pair as two escapes.
    private mutating func unicodeEscape() throws(Failure) -> [UInt8] {
        let escapeAt = at - 2
        let high = try hex4()
        var scalar: Unicode.Scalar?
        if (0xD800...0xDBFF).contains(high) {
            guard at + 1 < bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                throw failure("a high surrogate must be followed by a low one", at: escapeAt)
            }
            at += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else {
                throw failure("a high surrogate must be followed by a low one", at: escapeAt)
            }
            scalar = Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        } else {
            scalar = Unicode.Scalar(high)
        }
        guard let scalar else { throw failure("\\u escape is not a Unicode scalar", at: escapeAt) }
        return Array(String(Character(scalar)).utf8)
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard at + 4 <= bytes.count else { throw failure("expected four hex digits after \\u") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[at]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw failure("expected four hex digits after \\u")
            }
            v = v << 4 | d
            at += 1
        }
        return v
    }

    // MARK: - Positions

    private func peek(_ b: UInt8) -> Bool { at < bytes.count && bytes[at] == b }

    private mutating func skipSpace() {
        while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
    }

    /// A failure at `offset` (default: here), naming what is found there.
    private func failure(_ expected: String, at offset: Int? = nil) -> Failure {
        let o = min(offset ?? at, bytes.count)
        let (line, column) = Self.position(of: o, in: bytes)
        var reason = expected
        if offset == nil {
            if o >= bytes.count {
                reason += ", found the end of the text"
            } else {
                let c = bytes[o]
                let shown =
                    c >= 0x20 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
                reason += ", found \(shown)"
            }
        }
        return Failure(line: line, column: column, reason: reason)
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    static func position(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1, lineStart = 0
        for i in 0..<min(offset, bytes.count) where bytes[i] == 0x0A {
            line += 1
            lineStart = i + 1
        }
        let column = String(decoding: bytes[lineStart..<min(offset, bytes.count)], as: UTF8.self).count + 1
        return (line, column)
    }

    /// Checks that `bytes` are UTF-8 (as RFC 8259 requires), naming the
    /// place of the first bad byte.
    static func checkUTF8(_ bytes: [UInt8]) throws(Failure) {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var consumed = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                consumed += UTF8.width(s)
            case .emptyInput:
                return
            case .error:
                let (line, column) = position(of: consumed, in: bytes)
                throw Failure(line: line, column: column, reason: "the text is not UTF-8")
            }
        }
    }
}
