import Glibc

/// Renders Graphviz DOT to SVG with the `dot` program, when installed.
///
/// Runs `dot -Tsvg` with the DOT on its standard input, reading its output
/// with a deadline (then the child is killed): for the status page, off
/// the request path (the status stage's own thread).
public struct GraphvizRenderer: Sendable {
    /// The `dot` executable, or nil when Graphviz is not installed.
    public let dotPath: String?
    /// How long a rendering may take.
    public let timeout: Duration

    /// `dotPath` nil: look `dot` up in `PATH`.
    public init(dotPath: String? = nil, timeout: Duration = .seconds(5)) {
        self.dotPath = dotPath ?? GraphvizRenderer.find("dot")
        self.timeout = timeout
    }

    /// A renderer that never renders (the DOT text is shown instead).
    public static let disabled = GraphvizRenderer(dotPath: "", timeout: .zero)

    /// The SVG for `dot`, or nil (no Graphviz, a failure, a timeout).
    public func svg(_ dot: String) -> String? {
        guard let dotPath, !dotPath.isEmpty else { return nil }
        return run(dotPath, ["dot", "-Tsvg"], input: Array(dot.utf8)).flatMap { out in
            let text = String(decoding: out, as: UTF8.self)
            guard let start = text.firstRange(of: "<svg") else { return nil }
            return String(text[start.lowerBound...])
        }
    }

    static func find(_ name: String) -> String? {
        guard let path = getenv("PATH").map({ String(cString: $0) }) else { return nil }
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs `path` with `argv`, feeding `input`; the standard output if it
    /// exits 0 within the timeout.
    private func run(_ path: String, _ argv: [String], input: [UInt8]) -> [UInt8]? {
        var toChild: [Int32] = [-1, -1], fromChild: [Int32] = [-1, -1]
        // (Glibc's module has no pipe2: close-on-exec set right after.)
        guard pipe(&toChild) == 0 else { return nil }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0])
            close(toChild[1])
            return nil
        }
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, &cargs, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            return nil
        }
        // A child that dies early must not kill us with SIGPIPE: block it on
        // this thread while writing, and swallow one left pending.
        var pipeSet = sigset_t(), oldSet = sigset_t()
        sigemptyset(&pipeSet)
        sigaddset(&pipeSet, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSet, &oldSet)
        let output = exchange(write: toChild[1], read: fromChild[0], input: input)
        var pending = sigset_t()
        sigpending(&pending)
        if sigismember(&pending, SIGPIPE) == 1 {
            var zero = timespec()
            _ = sigtimedwait(&pipeSet, nil, &zero)
        }
        pthread_sigmask(SIG_SETMASK, &oldSet, nil)
        if output == nil { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // Exited normally with status 0: (status & 0x7f) == 0 and (status >> 8) & 0xff == 0.
        guard let output, status & 0x7f == 0, (status >> 8) & 0xff == 0 else { return nil }
        return output
    }

    /// Writes `input` to `write` and reads `read` to its end, within the timeout.
    private func exchange(write wfd: Int32, read rfd: Int32, input: [UInt8]) -> [UInt8]? {
        var wfd = wfd
        defer {
            if wfd >= 0 { close(wfd) }
            close(rfd)
        }
        _ = fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK)
        var written = 0
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        let (s, a) = timeout.components
        var remainingMs = Int64(s) * 1000 + a / 1_000_000_000_000_000
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        if input.isEmpty {
            close(wfd)
            wfd = -1
        }
        while true {
            var fds = [pollfd(fd: rfd, events: Int16(POLLIN), revents: 0)]
            if wfd >= 0 { fds.append(pollfd(fd: wfd, events: Int16(POLLOUT), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), Int32(clamping: max(remainingMs, 0)))
            if n < 0 && errno != EINTR { return nil }
            if n == 0 { return nil }  // timed out
            if wfd >= 0, fds.count > 1, fds[1].revents != 0 {
                let w = input.withUnsafeBytes { Glibc.write(wfd, $0.baseAddress! + written, input.count - written) }
                if w > 0 { written += w }
                if w < 0 && errno != EAGAIN && errno != EINTR { return nil }
                if written == input.count || w < 0 && errno == EPIPE {
                    close(wfd)
                    wfd = -1
                }
            }
            if fds[0].revents != 0 {
                let r = chunk.withUnsafeMutableBytes { Glibc.read(rfd, $0.baseAddress!, $0.count) }
                if r == 0 { return output }
                if r < 0 && errno != EINTR && errno != EAGAIN { return nil }
                if r > 0 { output.append(contentsOf: chunk[0..<r]) }
                if output.count > 16 << 20 { return nil }
            }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let elapsed = Int64(now.tv_sec - start.tv_sec) * 1000 + Int64(now.tv_nsec - start.tv_nsec) / 1_000_000
            remainingMs = Int64(s) * 1000 + a / 1_000_000_000_000_000 - elapsed
            if remainingMs <= 0 { return nil }
        }
    }
}
