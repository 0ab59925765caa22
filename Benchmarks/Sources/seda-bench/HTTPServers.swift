import Glibc

/// The servers `seda-bench http` knows by name, and how each is started.
///
/// | name | what |
/// |---|---|
/// | `seda-httpd` | seda-httpd with `--threads` of the run (`--seda-threads`) |
/// | `seda-httpd-1t`, `seda-httpd-2t` | seda-httpd on 1 or 2 threads |
/// | `seda-httpd+target` | seda-httpd with `--response-time-target-ms` (the overload run's controller) |
/// | `seda-httpd-fused`, `seda-httpd-staged` | seda-httpd with `--pipeline fused` or `staged` (`--seda-threads`) |
/// | `http-pool`, `http-thread`, `http-epoll`, `http-epoll-2t` | seda-baseline's servers (LOAD.md) |
/// | `seda-nio-httpd`, `seda-nio-httpd-2t` | the SwiftNIO server, 1 or 2 event loops |
/// | `nginx-1w`, `nginx-2w` | nginx-anchor with 1 or 2 workers |
/// | `h2o-1t`, `h2o-2t` | h2o-anchor with 1 or 2 threads |
struct HTTPServers {
    /// seda-httpd's executable.
    let httpd: String
    /// The directory of nginx-anchor and h2o-anchor.
    let anchors: String?
    /// seda-httpd's threads for the plain `seda-httpd` name.
    let sedaThreads: Int
    let poller: String
    let pipeline: String?
    let extraHTTPDArguments: [String]
    let bottleneckMs: Double
    let bottleneckThreads: Int
    let targetMs: Int
    let maxConnections: Int

    static let names = [
        "seda-httpd", "seda-httpd-1t", "seda-httpd-2t", "seda-httpd+target", "seda-httpd-fused",
        "seda-httpd-staged", "http-pool", "http-thread",
        "http-epoll", "http-epoll-2t", "seda-nio-httpd", "seda-nio-httpd-2t", "nginx-1w", "nginx-2w", "h2o-1t",
        "h2o-2t",
    ]

    /// Starts the server called `name`, or returns a reason it cannot
    /// (not built, not installed) as `.skipped`.
    func start(_ name: String) -> Result<HTTPServerProcess, BenchError> {
        do {
            switch name {
            case "seda-httpd": return .success(try startHTTPD(name, threads: sedaThreads, target: false))
            case "seda-httpd-1t": return .success(try startHTTPD(name, threads: 1, target: false))
            case "seda-httpd-2t": return .success(try startHTTPD(name, threads: 2, target: false))
            case "seda-httpd+target": return .success(try startHTTPD(name, threads: sedaThreads, target: true))
            case "seda-httpd-fused", "seda-httpd-staged":
                return .success(
                    try startHTTPD(name, threads: sedaThreads, target: false, pipeline: String(name.dropFirst(11))))
            case "http-pool": return .success(try baseline(name, "http-pool", ["--threads", "150"]))
            case "http-thread": return .success(try baseline(name, "http-thread", []))
            case "http-epoll": return .success(try baseline(name, "http-epoll", []))
            case "http-epoll-2t": return .success(try baseline(name, "http-epoll", ["--threads", "2"]))
            case "seda-nio-httpd": return .success(try nio(name, threads: 1))
            case "seda-nio-httpd-2t": return .success(try nio(name, threads: 2))
            case "nginx-1w": return .success(try anchor(name, script: "nginx-anchor", threads: 1))
            case "nginx-2w": return .success(try anchor(name, script: "nginx-anchor", threads: 2))
            case "h2o-1t": return .success(try anchor(name, script: "h2o-anchor", threads: 1))
            case "h2o-2t": return .success(try anchor(name, script: "h2o-anchor", threads: 2))
            default:
                return .failure(BenchError("unknown server '\(name)' (\(HTTPServers.names.joined(separator: ", ")))"))
            }
        } catch let e as BenchError {
            return .failure(e)
        } catch {
            return .failure(BenchError("\(name): \(error)"))
        }
    }

    private func startHTTPD(_ label: String, threads: Int, target: Bool, pipeline: String? = nil) throws
        -> HTTPServerProcess
    {
        guard access(httpd, X_OK) == 0 else {
            throw BenchError("seda-httpd not built at \(httpd) (swift build -c release at the root; or --httpd PATH)")
        }
        let port = try HTTPServerProcess.freePort()
        var args = [
            httpd, "--port", "\(port)", "--address", "127.0.0.1", "--threads", "\(threads)", "--poller", poller,
            "--max-connections", "\(maxConnections)", "--bottleneck-ms", Stats.fixed(bottleneckMs, 3),
            "--bottleneck-threads", "\(bottleneckThreads)",
        ]
        if target { args += ["--response-time-target-ms", "\(targetMs)"] }
        if let pipeline = pipeline ?? self.pipeline { args += ["--pipeline", pipeline] }
        args += extraHTTPDArguments
        return try HTTPServerProcess(label: label, argv: args)
    }

    private func baseline(_ label: String, _ server: String, _ args: [String]) throws -> HTTPServerProcess {
        let exe = executableDirectory() + "/seda-baseline"
        guard access(exe, X_OK) == 0 else { throw BenchError("\(exe) is not built") }
        return try HTTPServerProcess(label: label, argv: [exe, server] + args)
    }

    private func nio(_ label: String, threads: Int) throws -> HTTPServerProcess {
        let exe = executableDirectory() + "/seda-nio-httpd"
        guard access(exe, X_OK) == 0 else { throw BenchError("\(exe) is not built") }
        return try HTTPServerProcess(
            label: label,
            argv: [
                exe, "--threads", "\(threads)", "--bottleneck-ms", Stats.fixed(bottleneckMs, 3),
                "--bottleneck-threads", "\(bottleneckThreads)",
            ])
    }

    private func anchor(_ label: String, script: String, threads: Int) throws -> HTTPServerProcess {
        guard let anchors, access(anchors + "/" + script, X_OK) == 0 else {
            throw BenchError("\(script) not found (--anchors DIR: the directory of nginx-anchor and h2o-anchor)")
        }
        let program = script.hasPrefix("nginx") ? "nginx" : "h2o"
        guard HTTPServers.onPath(program) else {
            throw BenchError("\(program) not installed (script/install-deps: apt-get install nginx-light h2o)")
        }
        let port = try HTTPServerProcess.freePort()
        return try HTTPServerProcess(
            label: label, argv: ["/bin/bash", anchors + "/" + script, "\(threads)", "\(port)"], fixedPort: port)
    }

    /// Whether `program` is an executable file in a directory of PATH (or /usr/sbin).
    static func onPath(_ program: String) -> Bool { which(program) != nil }

    /// The path of `program` in a directory of PATH (or /usr/sbin, /sbin), or nil.
    static func which(_ program: String) -> String? {
        var path = "/usr/bin:/bin"
        if let p = getenv("PATH") { path = String(cString: p) }
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        where access("\(dir)/\(program)", X_OK) == 0 {
            return "\(dir)/\(program)"
        }
        return nil
    }

    /// seda-httpd's default place: the root package's release build, else its debug build.
    static func defaultHTTPD() -> String {
        let root = repositoryRoot()
        let release = root + "/.build/release/seda-httpd"
        if access(release, X_OK) == 0 { return release }
        let debug = root + "/.build/debug/seda-httpd"
        return access(debug, X_OK) == 0 ? debug : release
    }

    /// The anchors' directory: the repository's sibling `shared/bench`
    /// (/work/shared/bench beside /work/main), else /work/shared/bench.
    static func defaultAnchors() -> String? {
        let root = repositoryRoot()
        for dir in [root + "/../shared/bench", root + "/../../shared/bench", "/work/shared/bench"]
        where access(dir + "/nginx-anchor", R_OK) == 0 {
            return dir
        }
        return nil
    }

    /// The repository root: the nearest ancestor of this executable's
    /// directory holding Benchmarks/Package.swift.
    static func repositoryRoot() -> String {
        var dir = executableDirectory()
        while dir.count > 1 {
            if access(dir + "/Benchmarks/Package.swift", R_OK) == 0 { return dir }
            guard let slash = dir.lastIndex(of: "/") else { break }
            dir = slash == dir.startIndex ? "/" : String(dir[..<slash])
        }
        return "."
    }
}
