import CSedaLoad
import Glibc

/// A server under `seda-bench http`: a child process on 127.0.0.1 whose port
/// is known once it is ready, stopped with SIGINT (then SIGKILL after 10 s).
///
/// Servers of this repository announce their port on stdout (LOAD.md;
/// seda-httpd prints `seda-httpd listening on http://127.0.0.1:<port>/`).
/// The anchors (nginx, h2o) print nothing: they get a free port on their
/// command line and are ready when a connect succeeds. Used from one thread.
final class HTTPServerProcess {
    let label: String
    let pid: Int32
    let port: Int
    let stderrPath: String
    private var stdoutFd: Int32
    private var stopped = false

    /// Starts `argv`. With `fixedPort`, waits for a connect to it to succeed;
    /// otherwise for the port on stdout. Throws when the server exits or is
    /// not ready within `timeout` seconds.
    init(label: String, argv: [String], fixedPort: Int? = nil, timeout: Double = 20) throws {
        self.label = label
        var template = Array("/tmp/seda-bench-http-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw BenchError("mkstemp: \(String(cString: strerror(errno)))") }
        close(fd)
        let errPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        stderrPath = errPath
        var p: Int32 = 0
        var out: Int32 = -1
        let rc = withCStrings(argv) { sload_spawn($0, errPath, &p, &out) }
        guard rc == 0 else { throw BenchError("\(label): cannot start \(argv[0]): \(String(cString: strerror(-rc)))") }
        pid = p
        stdoutFd = out
        if let fixedPort {
            port = fixedPort
            guard HTTPServerProcess.waitConnectable(port: fixedPort, pid: p, timeout: timeout) else {
                _ = sload_stop(p, 2)
                close(out)
                throw BenchError("\(label): not accepting on 127.0.0.1:\(fixedPort); stderr in \(stderrPath)")
            }
        } else {
            let r = sload_wait_port(out, timeout)
            guard r > 0 else {
                _ = sload_stop(p, 2)
                close(out)
                throw BenchError("\(label) printed no port (\(String(cString: strerror(-r)))); stderr in \(stderrPath)")
            }
            port = Int(r)
        }
    }

    deinit { stop() }

    /// SIGINT, then the exit status (128 + signal when killed). Idempotent.
    @discardableResult
    func stop() -> Int32 {
        guard !stopped else { return 0 }
        stopped = true
        let status = sload_stop(pid, 10)
        close(stdoutFd)
        return status
    }

    /// The server's resident memory in KiB: the process and its
    /// descendants (nginx's workers), from /proc.
    var residentKiB: Int {
        HTTPServerProcess.treePids(pid).map(HTTPServerProcess.vmRSS).reduce(0, +)
    }

    /// The last lines of the server's stderr (for failure messages).
    func stderrTail(_ lines: Int = 5) -> String {
        let text = readTextFile(stderrPath) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// A port nothing listens on now (bound and released: another program
    /// may take it meanwhile, which the start then reports).
    static func freePort() throws -> Int {
        var bound: UInt16 = 0
        let fd = sload_listen(0, 1, 0, 0, &bound)
        guard fd >= 0 else { throw BenchError("no free port: \(String(cString: strerror(-fd)))") }
        close(fd)
        return Int(bound)
    }

    private static func waitConnectable(port: Int, pid: Int32, timeout: Double) -> Bool {
        let deadline = sload_now_ns() + Int64(timeout * 1e9)
        while sload_now_ns() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return false }
            let fd = sload_connect_start(UInt16(port))
            if fd >= 0 {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&p, 1, 200) == 1 && sload_connect_result(fd) == 0
                close(fd)
                if ready { return true }
            }
            usleep(50_000)
        }
        return false
    }

    /// `pid` and every descendant, found by the parent field of /proc/N/stat.
    static func treePids(_ root: Int32) -> [Int32] {
        var parent: [Int32: Int32] = [:]
        if let dir = opendir("/proc") {
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                guard let pid = Int32(name), let stat = readTextFile("/proc/\(name)/stat") else { continue }
                // "pid (comm) state ppid ...": comm may hold spaces; the ppid follows the last ')'.
                guard let paren = stat.lastIndex(of: ")") else { continue }
                let fields = stat[stat.index(after: paren)...].split(separator: " ")
                if fields.count > 1, let ppid = Int32(fields[1]) { parent[pid] = ppid }
            }
            closedir(dir)
        }
        var all = [root]
        var i = 0
        while i < all.count {
            let p = all[i]
            all += parent.filter { $0.value == p }.map(\.key)
            i += 1
        }
        return all
    }

    /// VmRSS of one process in KiB (0 when it is gone).
    static func vmRSS(_ pid: Int32) -> Int {
        guard let status = readTextFile("/proc/\(pid)/status") else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
        }
        return 0
    }
}

/// Calls `body` with `argv` as a NULL-terminated C array.
func withCStrings<R>(_ argv: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for a in cargs { free(a) } }
    return cargs.withUnsafeBufferPointer { buf in
        buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) { body($0) }
    }
}

/// A whole file as text, or nil when it cannot be read.
func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes (or appends) text to a file.
func writeTextFile(_ path: String, _ text: String, append: Bool = false) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0o644)
    guard fd >= 0 else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
        done += n
    }
}

/// Runs a tool to completion (at most `timeout` s, then SIGINT, SIGKILL),
/// its stderr inherited (progress), and returns its exit status and stdout.
func runTool(_ argv: [String], timeout: Double) throws -> (status: Int32, stdout: String) {
    var pid: Int32 = 0
    var out: Int32 = -1
    let rc = withCStrings(argv) { sload_spawn($0, nil, &pid, &out) }
    guard rc == 0 else { throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(-rc)))") }
    defer { close(out) }
    let deadline = sload_now_ns() + Int64(timeout * 1e9)
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let left = deadline - sload_now_ns()
        if left <= 0 {
            _ = sload_stop(pid, 5)
            throw BenchError("\(argv[0]) did not finish within \(Int(timeout)) s; stopped")
        }
        var p = pollfd(fd: out, events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, Int32(min(left / 1_000_000 + 1, 1000)))
        if n <= 0 { continue }
        let k = read(out, &buf, buf.count)
        if k < 0 && errno == EINTR { continue }
        if k <= 0 { break }
        bytes += buf[0..<k]
    }
    // stdout closed: the tool is exiting; wait for it, as long as the deadline allows.
    var status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) != pid {
        if sload_now_ns() >= deadline {
            _ = sload_stop(pid, 5)
            throw BenchError("\(argv[0]) did not exit within \(Int(timeout)) s; stopped")
        }
        usleep(10_000)
    }
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, String(decoding: bytes, as: UTF8.self))
}
