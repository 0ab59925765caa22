import CSedaLoad
import Glibc

/// `seda-bench http`'s memory part: what a server keeps per open idle
/// keep-alive connection. Each server (a fresh process) gets one request on
/// one connection to warm it, its RSS (with its children's: nginx's worker)
/// is read, then `connections` connections each get one request answered
/// and stay open and silent (CSedaLoad's sload_idle_open, in this process);
/// RSS again, and the difference per connection.
struct HTTPMemory {
    let servers: [String]
    let connections: Int

    func run(_ c: HTTPBench.Context) throws {
        heading("memory: \(connections) idle keep-alive connections (one request each, then silent)")
        // The client holds one descriptor per connection in this process.
        var rl = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
        guard rl.rlim_cur >= rlim_t(connections + 64) else {
            c.problems.note("memory: descriptor limit")
            print(
                "memory: skipped: RLIMIT_NOFILE is \(rl.rlim_cur) (hard \(rl.rlim_max)); \(connections) connections need "
                    + "\(connections + 64): raise the hard limit (ulimit -Hn) or pass --idle-connections")
            return
        }
        var csv = "server,connections,idle,failed,rss_before_kib,rss_after_kib,kib_per_connection,still_open\n"
        var table = Table(headers: [
            "server", "idle conns", "failed", "RSS before MiB", "RSS after MiB", "KiB/conn", "still open",
        ])
        for name in servers {
            guard let server = c.start(name) else { continue }
            defer { server.stop() }
            ioProgress("seda-bench http memory: \(name)...\n")
            var warm = sload_idle_t()
            _ = sload_idle_open(UInt16(server.port), "/index.html", 1, 1, 10, &warm)
            sload_idle_close(&warm)
            usleep(200_000)
            let before = server.residentKiB
            var idle = sload_idle_t()
            let rc = sload_idle_open(UInt16(server.port), "/index.html", UInt32(connections), 256, 120, &idle)
            if rc == 0 && idle.failed > 0 { c.problems.note("\(name): \(idle.failed) idle connections failed") }
            guard rc == 0 else {
                c.problems.note("\(name): idle client: \(String(cString: strerror(-rc)))")
                table.add([name, "failed: \(String(cString: strerror(-rc)))", "", "", "", "", ""])
                continue
            }
            usleep(500_000)  // let the server settle (buffers released after the write)
            let after = server.residentKiB
            let open = sload_idle_still_open(&idle)
            sload_idle_close(&idle)
            let perConn = idle.idle > 0 ? Double(after - before) / Double(idle.idle) : .nan
            table.add([
                name, "\(idle.idle)", "\(idle.failed)", Stats.fixed(Double(before) / 1024, 1),
                Stats.fixed(Double(after) / 1024, 1), perConn.isNaN ? "-" : Stats.fixed(perConn, 2), "\(open)",
            ])
            csv +=
                "\(name),\(connections),\(idle.idle),\(idle.failed),\(before),\(after),\(perConn.isNaN ? "" : Stats.fixed(perConn, 3)),\(open)\n"
        }
        print(table.render())
        try writeTextFile(c.out + "/memory.csv", csv)
        print(
            """

            RSS: VmRSS of the server and its children (KiB = 1024 bytes). Measured here earlier (issue 10): nginx \
            ~0.6 KB per idle connection, SwiftNIO ~7 KB; target: seda-httpd no more than nginx. 'still open': \
            connections the server had not closed when the second RSS was read. CSV: \(c.out)/memory.csv
            """)
    }
}
