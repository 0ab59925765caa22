import Glibc

/// A line on stderr (progress of the long benchmarks).
func ioProgress(_ s: String) {
    var line = s
    line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
}

/// A line on stdout, written at once (a parent process waits for it).
func announce(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = Glibc.write(1, $0.baseAddress, $0.count) }
}

/// The directory this executable lives in (the other benchmark programs are
/// built beside it).
func executableDirectory() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { return "." }
    let path = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return String(path[..<slash])
}

/// A server run as a child process: started with its arguments, its port
/// read from the `<name>: listening on 127.0.0.1:<port>` line it prints,
/// stopped with SIGTERM. Its stderr goes to `log` (its totals end up there).
final class ServerProcess {
    let pid: pid_t
    let port: UInt16
    let label: String

    init(label: String, executable: String, arguments: [String], log: String) throws {
        self.label = label
        guard access(executable, X_OK) == 0 else {
            throw BenchError("\(label): \(executable) is not built")
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw BenchError("\(label): pipe: \(errno)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let r = posix_spawn(&child, executable, &actions, nil, argv, environ)
        close(fds[1])
        guard r == 0 else {
            close(fds[0])
            throw BenchError("\(label): posix_spawn: \(r)")
        }
        pid = child
        // Read until the line with the port (bounded: 15 s).
        var text = ""
        var found: UInt16? = nil
        let deadline = time(nil) + 15
        while found == nil && time(nil) < deadline {
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 200) <= 0 { continue }
            var buf = [UInt8](repeating: 0, count: 512)
            let n = read(fds[0], &buf, buf.count)
            if n <= 0 { break }
            text += String(decoding: buf[0..<n], as: UTF8.self)
            found = Self.announcedPort(text)
        }
        close(fds[0])
        guard let found else {
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
            throw BenchError("\(label): no port announced (see \(log))")
        }
        port = found
    }

    /// The port in a complete "... listening on 127.0.0.1:<port>" line of text.
    static func announcedPort(_ text: String) -> UInt16? {
        let marker = Array("listening on 127.0.0.1:".utf8)
        let bytes = Array(text.utf8)
        guard bytes.count > marker.count else { return nil }
        for start in 0...(bytes.count - marker.count) where Array(bytes[start..<start + marker.count]) == marker {
            var port = 0
            var i = start + marker.count
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                port = port * 10 + Int(bytes[i] - 0x30)
                i += 1
            }
            return i < bytes.count && bytes[i] == 0x0a && port > 0 && port < 65536 ? UInt16(port) : nil
        }
        return nil
    }

    /// SIGTERM, then waits for it (SIGKILL after 10 s).
    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<1000 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(10000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The servers the socket benchmarks compare, and how to start each.
struct ServerSpec {
    let label: String
    let executable: String
    let arguments: [String]

    /// A Seda server (this executable's `serve`) in `lang` on `backend`.
    static func seda(
        lang: String, app: String, backend: String, threads: Int, acceptMode: String = "reuseport",
        idleTimeoutMs: Int = 0
    ) -> ServerSpec {
        var label = "seda-\(lang) \(backend)"
        if acceptMode != "reuseport" { label += " \(acceptMode)" }
        if idleTimeoutMs > 0 { label += " idle" }
        return ServerSpec(
            label: label, executable: executableDirectory() + "/seda-bench",
            arguments: [
                "serve", "--app", app, "--lang", lang, "--poller", backend, "--threads", "\(threads)",
                "--accept-mode", acceptMode, "--idle-timeout-ms", "\(idleTimeoutMs)",
            ])
    }

    /// A server of `seda-baseline` (LOAD.md).
    static func baseline(_ name: String, _ arguments: [String] = []) -> ServerSpec {
        ServerSpec(
            label: name, executable: executableDirectory() + "/seda-baseline", arguments: [name] + arguments)
    }

    func start(log: String) throws -> ServerProcess {
        try ServerProcess(label: label, executable: executable, arguments: arguments, log: log)
    }
}
