import Glibc

/// `seda-bench http --vs-anchors`: the servers users would pick instead,
/// measured with wrk (an independent client) on the 8 KB page, keep-alive,
/// each server a fresh process, every figure also as a fraction of the bare
/// epoll responder's (the loop's physical limit on this host); then the
/// seed's workload (seda-load: 20 ms think time, a new connection every 100
/// requests) for seda-httpd beside nginx.
struct HTTPAnchors {
    let servers: [String]
    let connections: [Int]
    let seconds: Int
    let wrkThreads: Int
    /// Seconds of wrk before each server's measured rows (connections, caches); 0: none.
    let warmupSeconds: Int
    let seedServers: [String]
    let seedClients: Int
    let seedDuration: Double

    /// Pairs compared: (seda-httpd row, anchor row, how much of the anchor's req/s it must reach).
    static let pairs: [(String, String, Double)] = [
        ("seda-httpd-1t", "nginx-1w", 1), ("seda-httpd-2t", "nginx-2w", 1), ("seda-httpd-1t", "h2o-1t", 1),
        ("seda-httpd-1t", "seda-nio-httpd", 2),
    ]

    func run(_ c: HTTPBench.Context) throws {
        heading("anchors: wrk -t\(wrkThreads), \(seconds) s per row, /index.html (8 KB), keep-alive")
        var results: [String: [Int: WrkResult]] = [:]
        var failures: [String: String] = [:]
        for name in servers {
            guard let server = c.start(name) else { continue }
            if warmupSeconds > 0, let n = connections.first {
                _ = try? runWrk(
                    port: server.port, path: "/index.html", connections: n, threads: wrkThreads, seconds: warmupSeconds)
            }
            for n in connections {
                ioProgress("seda-bench http anchors: \(name), \(n) connections...\n")
                do {
                    results[name, default: [:]][n] = try runWrk(
                        port: server.port, path: "/index.html", connections: n, threads: wrkThreads, seconds: seconds)
                    if let r = results[name]?[n], r.errors > 0 || r.requestsPerS == 0 {
                        c.problems.note("\(name) at \(n) connections: \(r.errors) wrk errors")
                    }
                } catch {
                    failures[name] = "\(error)"
                    c.problems.note("\(name) at \(n) connections: \(error)")
                }
            }
            server.stop()
        }
        var csv = "connections,server,requests_per_s,p50_ms,p99_ms,errors,vs_bare\n"
        var table = Table(headers: ["conns", "server", "req/s", "p50 ms", "p99 ms", "errors", "vs bare"])
        for n in connections {
            let bare = results["http-epoll"]?[n]?.requestsPerS
            for name in servers {
                guard let r = results[name]?[n] else {
                    if let f = failures[name] { table.add(["\(n)", name, "failed: \(f)", "", "", "", ""]) }
                    continue
                }
                let vs = bare.map { $0 > 0 ? r.requestsPerS / $0 : .nan }
                table.add([
                    "\(n)", name, Stats.fixed(r.requestsPerS, 0), ms(r.p50Ms), ms(r.p99Ms), "\(r.errors)",
                    vs.map { Stats.fixed($0, 2) } ?? "-",
                ])
                csv +=
                    "\(n),\(name),\(Stats.fixed(r.requestsPerS, 1)),\(Stats.fixed(r.p50Ms, 3)),\(Stats.fixed(r.p99Ms, 3)),\(r.errors),\(vs.map { Stats.fixed($0, 3) } ?? "")\n"
            }
        }
        print(table.render())
        try writeTextFile(c.out + "/anchors.csv", csv)

        var ratios = Table(headers: ["conns", "seda-httpd / anchor", "req/s ratio", "p99 ratio", "target", "verdict"])
        for n in connections {
            for (seda, anchor, need) in Self.pairs {
                guard let s = results[seda]?[n], let a = results[anchor]?[n], a.requestsPerS > 0 else { continue }
                let ratio = s.requestsPerS / a.requestsPerS
                let p99 = s.p99Ms / a.p99Ms
                let pass = ratio >= need && s.p99Ms <= a.p99Ms && s.errors == 0
                ratios.add([
                    "\(n)", "\(seda) / \(anchor)", Stats.fixed(ratio, 2), Stats.fixed(p99, 2),
                    "req/s >= \(Stats.fixed(need, 0))x, p99 <= anchor", pass ? "PASS" : "FAIL",
                ])
            }
        }
        if !ratios.rows.isEmpty {
            print("")
            print(ratios.render())
        }
        print(
            "\nCSV: \(c.out)/anchors.csv. Targets (issue 10): >= nginx and h2o with as many threads, >= 2x SwiftNIO, p99 no worse."
        )
        try seedWorkload(c)
    }

    /// The seed's workload, seda-load's closed loop, per server.
    private func seedWorkload(_ c: HTTPBench.Context) throws {
        guard !seedServers.isEmpty, seedClients > 0 else { return }
        heading(
            "the seed's workload: \(seedClients) clients, 20 ms think time, 100 requests per connection (seda-load)")
        let csv = c.out + "/seed.csv"
        unlink(csv)
        var rows: [String: LoadRow] = [:]
        var table = Table(headers: ["server", "compl/s", "p50 ms", "p90", "p99", "max", "fairness", "failed"])
        for name in seedServers {
            guard let server = c.start(name) else { continue }
            ioProgress("seda-bench http seed workload: \(name)...\n")
            do {
                let r = try c.load.closed(
                    port: server.port, label: name, clients: [seedClients], duration: seedDuration, csv: csv)[0]
                rows[name] = r
                table.add([
                    name, Stats.fixed(r["completions_per_s"], 0), ms(r["resp_p50_ms"]), ms(r["resp_p90_ms"]),
                    ms(r["resp_p99_ms"]), ms(r["resp_max_ms"]), Stats.fixed(r["fairness"], 3), "\(r.failures)",
                ])
                if r.failures > 0 { c.problems.note("\(name), seed workload: \(r.failures) failed") }
            } catch {
                c.problems.note("\(name), seed workload: \(error)")
                table.add([name, "failed: \(error)", "", "", "", "", "", ""])
            }
            server.stop()
        }
        print(table.render())
        for (seda, anchor, _) in Self.pairs where anchor.hasPrefix("nginx") {
            guard let s = rows[seda], let a = rows[anchor], a["completions_per_s"] > 0 else { continue }
            let pass = s["completions_per_s"] >= a["completions_per_s"] && s["resp_p99_ms"] <= a["resp_p99_ms"]
            print(
                "\(seda) / \(anchor): completions/s \(Stats.fixed(s["completions_per_s"] / a["completions_per_s"], 2))x, "
                    + "p99 \(ms(s["resp_p99_ms"])) vs \(ms(a["resp_p99_ms"])) ms: \(pass ? "PASS" : "FAIL") "
                    + "(target: >= nginx's completions/s, p99 <= nginx's)")
        }
        print("CSV: \(csv)")
    }
}
