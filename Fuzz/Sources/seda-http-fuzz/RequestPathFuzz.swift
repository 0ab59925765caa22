import Glibc
import Seda
import SedaHTTP

// The request path under libFuzzer: bytes as a client would send them, cut
// into packets anywhere, through
//   1. the request processor of the built-in site (parser, validation, path
//      normalisation, page cache, response writer), checking that what comes
//      out is a well-formed sequence of responses, no more than requests;
//   2. the parser alone with pauses and resumes at fuzzer-chosen points, and
//      each request's path normalised and opened under a document root full of
//      symbolic links pointing out, checking that no open ever lands outside.
// A violated invariant is a crash (a finding). Limits are small so the limit
// paths (414, 431) are reached with short inputs.

/// Everything built once per process.
final class Fixture: @unchecked Sendable {
    let runtime: Runtime
    let processor: HTTPRequestProcessor
    let limits: HTTPLimits
    let roots: [DocumentRoot]
    let rootPrefix: String

    init() {
        var limits = HTTPLimits()
        limits.initialBufferBytes = 64
        limits.maxRequestTargetBytes = 256
        limits.maxHeaderLineBytes = 256
        limits.maxHeaderBlockBytes = 1024
        limits.maxHeaderCount = 16
        limits.maxRequestsPerConnection = 50
        self.limits = limits
        var c = HTTPServerConfiguration()
        c.limits = limits
        c.statusPath = nil  // every answer inline: deterministic, no thread hand-off
        c.metricsPath = nil
        c.bottleneckPath = nil
        do {
            runtime = try Runtime(cpuThreads: 1)
            let site = try HTTPSite.install(in: runtime, configuration: c)
            let reply = try runtime.addStage("fuzz-reply", handler: NeverReplies())
            processor = HTTPRequestProcessor(site: site, replyTo: reply)
        } catch {
            fatalError("fuzz fixture: \(error)")
        }
        // root/{index.html, a.txt, dir/{index.html}, up-link, abs-link, up-dir, in-link}, outside/secret
        var template = Array("/tmp/seda-http-fuzz.XXXXXX".utf8CString)
        let base = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        mkdir("\(base)/root", 0o755)
        mkdir("\(base)/root/dir", 0o755)
        mkdir("\(base)/outside", 0o755)
        for (path, text) in [
            ("root/index.html", "index"), ("root/a.txt", "a"), ("root/dir/index.html", "dir"),
            ("outside/secret", "SECRET"),
        ] {
            let fd = open("\(base)/\(path)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        symlink("../outside/secret", "\(base)/root/up-link")
        symlink("\(base)/outside/secret", "\(base)/root/abs-link")
        symlink("../outside", "\(base)/root/up-dir")
        symlink("a.txt", "\(base)/root/in-link")
        symlink("../../outside", "\(base)/root/dir/deep")
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX))
        rootPrefix = String(cString: realpath("\(base)/root", &resolved)!)
        do {
            roots = [
                try DocumentRoot(path: "\(base)/root", resolution: .beneath),
                try DocumentRoot(path: "\(base)/root", resolution: .noSymlinks),
            ]
        } catch {
            fatalError("fuzz fixture: \(error)")
        }
    }
}

/// The fuzz fixture never defers work, so its reply stage never runs.
struct NeverReplies: EventHandler {
    typealias Event = HTTPDeferredRequest
    func handle(_ batch: inout EventBatch<HTTPDeferredRequest>) throws {
        fatalError("a request was deferred although every endpoint is off and there is no document root")
    }
}

let fixture = Fixture()

/// Packet sizes from a seed: mostly small, sometimes the rest at once.
struct Splitter {
    var state: UInt64
    init(_ seed: UInt8) { state = 0x9E37_79B9_7F4A_7C15 &* (UInt64(seed) &+ 1) }
    mutating func next(_ remaining: Int) -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        let r = Int(state % 100)
        if r < 20 { return remaining }
        return min(remaining, 1 + Int(state >> 32) % (r < 60 ? 8 : 200))
    }
}

func fail(_ what: String, _ data: UnsafeRawBufferPointer) -> Never {
    let shown = String(decoding: data.prefix(200), as: UTF8.self).debugDescription
    fatalError("seda-http-fuzz: \(what) for input \(shown)")
}

/// An output that keeps the bytes; bodies are checked against their buffers' bounds.
struct CheckingOutput: HTTPResponseOutput {
    var bytes: [UInt8] = []
    mutating func writeCopy(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    mutating func write(_ buffer: HTTPBuffer, offset: Int, count: Int) {
        guard offset >= 0, count >= 0, offset + count <= buffer.count else {
            fatalError("seda-http-fuzz: body write \(offset)+\(count) outside a \(buffer.count)-byte buffer")
        }
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer.bytes[offset..<(offset + count)]))
    }
    mutating func sendFile(_ file: HTTPFileBody, offset: Int64, count: Int64) {
        fatalError("seda-http-fuzz: sendfile on the built-in site")
    }
}

/// Counts well-formed responses in `bytes` (status line, header lines, blank
/// line, Content-Length bytes of body); nil when malformed. HEAD responses
/// carry Content-Length without a body: `heads` tells which.
func countResponses(_ bytes: [UInt8], heads: [Bool]) -> Int? {
    var i = 0, n = 0
    while i < bytes.count {
        var end = i
        while end + 3 < bytes.count,
            !(bytes[end] == 13 && bytes[end + 1] == 10 && bytes[end + 2] == 13 && bytes[end + 3] == 10)
        {
            end += 1
        }
        guard end + 3 < bytes.count else { return nil }
        let head = String(decoding: bytes[i..<end], as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 "), head.utf8.count > 12 else { return nil }
        var length: Int? = nil
        var connection = false
        for line in head.split(separator: "\r\n", omittingEmptySubsequences: false).dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            if name == "content-length" {
                guard length == nil, let v = Int(value), v >= 0 else { return nil }
                length = v
            }
            if name == "connection" { connection = true }
        }
        guard connection else { return nil }
        let status = Int(head.dropFirst(9).prefix(3)) ?? 0
        i = end + 4
        let isHead = n < heads.count && heads[n]
        if status != 304 && !isHead {
            guard let length, i + length <= bytes.count else { return nil }
            i += length
        }
        n += 1
    }
    return n
}

func fuzzOne(_ data: UnsafeRawBufferPointer) {
    guard data.count >= 2 else { return }
    let seed = data[0], control = data[1]
    let input = UnsafeRawBufferPointer(rebasing: data[2...])

    // 1. The processor: responses well formed, in number at most the requests.
    let session = HTTPSession(limits: fixture.limits)
    var out = CheckingOutput()
    var split = Splitter(seed)
    var at = 0
    var action = HTTPConnectionAction.read
    while at < input.count && action == .read {
        let n = split.next(input.count - at)
        action = fixture.processor.received(
            UnsafeRawBufferPointer(rebasing: input[at..<(at + n)]), session: session,
            output: &out)
        at += n
    }
    if action == .waitForReply { fail("a request waited for a stage", input) }
    if action == .close && !session.parser.isFinished { fail("close without a finished parser", input) }
    // HEAD responses have no body: find which requests were HEAD by parsing again.
    var heads: [Bool] = []
    let probe = HTTPRequestParser(limits: fixture.limits)
    var split2 = Splitter(seed)
    var at2 = 0
    while at2 < input.count && !probe.isFinished {
        let n = split2.next(input.count - at2)
        probe.feed(UnsafeRawBufferPointer(rebasing: input[at2..<(at2 + n)])) { head in
            heads.append(head.method == .head)
            return .proceed
        }
        at2 += n
    }
    guard let responses = countResponses(out.bytes, heads: heads) else { fail("malformed responses", input) }
    // Exactly one response per request the processor's parser handed over
    // (it may stop earlier than the probe: a refused path ends the connection).
    if responses != session.parser.requestCount {
        fail("\(responses) responses for \(session.parser.requestCount) requests", input)
    }
    if responses > heads.count { fail("\(responses) responses for \(heads.count) parsed requests", input) }

    // 2. The parser with pauses, and every path resolved under the roots.
    let parser = HTTPRequestParser(limits: fixture.limits)
    var split3 = Splitter(seed &+ 1)
    var at3 = 0
    var index = 0
    func onRequest(_ head: HTTPRequestHead) -> HTTPParserAction {
        index += 1
        if head.failure != nil {
            if head.keepAlive { fail("a refused request kept alive", input) }
            return .proceed
        }
        if head.method == .other { fail("an unrefused request with another method", input) }
        if head.version.major != 1 { fail("an unrefused HTTP/\(head.version.major)", input) }
        if head.path.first != UInt8(ascii: "/") { fail("a path not starting with '/'", input) }
        checkPath(head.path, input)
        let c = HTTPConditions(head)
        if let r = c.range, let (offset, count) = r.resolve(size: 1000) {
            if offset < 0 || count < 1 || offset + count > 1000 { fail("range \(offset)+\(count) outside 1000", input) }
        }
        return (control >> (index % 8)) & 1 == 1 ? .pause : .proceed
    }
    while at3 < input.count && !parser.isFinished {
        let n = split3.next(input.count - at3)
        var status = parser.feed(UnsafeRawBufferPointer(rebasing: input[at3..<(at3 + n)]), onRequest)
        var resumes = 0
        while status == .paused && resumes < 1000 {
            status = parser.resume(onRequest)
            resumes += 1
        }
        at3 += n
    }
    if parser.bufferedBytes > fixture.limits.maxHeaderBlockBytes + input.count {
        fail("\(parser.bufferedBytes) bytes buffered", input)
    }
}

/// Normalises `path` and opens it under both roots: nothing outside the root
/// may ever open.
func checkPath(_ path: UnsafeRawBufferPointer, _ input: UnsafeRawBufferPointer) {
    withUnsafeTemporaryAllocation(byteCount: max(path.count, 1), alignment: 8) { buf in
        guard let n = RequestPath.normalize(path, into: buf) else { return }
        let normalized = UnsafeRawBufferPointer(rebasing: buf[0..<n])
        if n > path.count || normalized.first != UInt8(ascii: "/") { fail("normalised path malformed", input) }
        let text = String(decoding: normalized, as: UTF8.self)
        if text.contains("/../") || text.hasSuffix("/..") || text.contains("/./") || text.hasSuffix("/.")
            || text.contains("//") || normalized.contains(0)
        {
            fail("normalised path '\(text)' keeps a dot segment, a double slash or a NUL", input)
        }
        for root in fixture.roots {
            if case .file(let fd, _, _) = root.open(normalized) {
                var link = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let len = readlink("/proc/self/fd/\(fd)", &link, Int(PATH_MAX))
                close(fd)
                let opened = len > 0 ? String(decoding: link[0..<len].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
                if !opened.hasPrefix(fixture.rootPrefix + "/") {
                    fail("'\(text)' opened '\(opened)' outside the root \(fixture.rootPrefix)", input)
                }
            }
        }
    }
}

/// libFuzzer's driver (in the runtime `-sanitize=fuzzer` links). SwiftPM
/// names an executable's entry point itself (`main` is redirected to the
/// module's), so libFuzzer's own `main` is not used: ours calls the driver.
#if SEDA_FUZZ
    @_silgen_name("LLVMFuzzerRunDriver")
    func fuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32
#endif

@main
struct SedaHTTPFuzz {
    static func main() {
        #if SEDA_FUZZ
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(
                fuzzerRunDriver(&argc, &argv) { data, size in
                    fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
                    return 0
                })
        #else
            // Without libFuzzer: replays the files given (a corpus, a crash) through the same checks.
            let files = CommandLine.arguments.dropFirst()
            if files.isEmpty {
                print("usage: seda-http-fuzz FILE... (replays inputs; build with -DSEDA_FUZZ for libFuzzer)")
                exit(2)
            }
            for file in files {
                let fd = open(file, O_RDONLY)
                guard fd >= 0 else { fatalError("cannot open \(file)") }
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    bytes.append(contentsOf: chunk[0..<n])
                }
                close(fd)
                bytes.withUnsafeBytes { fuzzOne($0) }
            }
            print("seda-http-fuzz: \(files.count) inputs replayed, no finding")
        #endif
    }
}
