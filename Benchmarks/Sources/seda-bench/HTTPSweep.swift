import Glibc

/// `seda-bench http`'s sweep: the seed's figure (completions/s against
/// clients, seda-load's closed loop: 20 ms think time, a new connection
/// every 100 requests) for the thread-pool and thread-per-connection
/// baselines and seda-httpd, and the seed's table (connect and response
/// times, Jain's fairness) at the largest client count, beside the
/// published figures.
struct HTTPSweep {
    let servers: [String]
    let clients: [Int]
    let duration: Double

    func run(_ c: HTTPBench.Context) throws {
        heading("sweep: completions/s vs clients (seda-load closed loop, 20 ms think, 100 requests per connection)")
        let csv = c.out + "/sweep.csv"
        unlink(csv)
        var results: [(String, [LoadRow])] = []
        for name in servers {
            ioProgress(
                "seda-bench http sweep: \(name) at \(clients.map(String.init).joined(separator: ",")) clients...\n")
            guard let server = c.start(name) else { continue }
            do {
                let rows = try c.load.closed(
                    port: server.port, label: name, clients: clients, duration: duration, csv: csv)
                results.append((name, rows))
                for r in rows where r.failures > 0 {
                    c.problems.note("\(name) at \(r.cells["clients"] ?? "?") clients: \(r.failures) failed")
                }
            } catch {
                print("\(name): failed: \(error) \(server.stderrTail())")
                c.problems.note("\(name): \(error)")
            }
            server.stop()
        }
        guard !results.isEmpty else { return }

        var figure = Table(headers: ["clients"] + results.map { $0.0 + " compl/s" })
        for (i, n) in clients.enumerated() {
            figure.add(
                ["\(n)"]
                    + results.map { _, rows in
                        i < rows.count ? Stats.fixed(rows[i]["completions_per_s"], 0) + failureNote(rows[i]) : "-"
                    })
        }
        print(figure.render())

        let top = clients.max()!
        heading("the seed's table at \(top) clients (ms)")
        var table = Table(headers: [
            "server", "compl/s", "connect p50", "p90", "p99", "max", "response p50", "p90", "p99", "max", "fairness",
            "failed",
        ])
        for (name, rows) in results {
            guard let r = rows.first(where: { Int($0["clients"]) == top }) else { continue }
            table.add([
                name, Stats.fixed(r["completions_per_s"], 0), ms(r["connect_p50_ms"]), ms(r["connect_p90_ms"]),
                ms(r["connect_p99_ms"]), ms(r["connect_max_ms"]), ms(r["resp_p50_ms"]), ms(r["resp_p90_ms"]),
                ms(r["resp_p99_ms"]), ms(r["resp_max_ms"]), Stats.fixed(r["fairness"], 3), "\(r.failures)",
            ])
        }
        print(table.render())
        print(
            """

            failed: request errors, failed connects, and requests still unanswered after the drain (those count in \
            the percentiles at their age then, a lower bound: a thread pool's waiting clients show up here).

            Published for reference (other hardware, other decade; the shape, not the numbers):
              SEDA, SOSP 2001, 1,024 clients: Haboob max response 3.9 s, Apache 93.7 s; Jain's fairness 0.98 vs 0.80.
              The seed's slides (4-way 500 MHz PIII, 1,000 connections; forking 500): connect median/max, response median/max:
                Sandstorm   420 / 3,116 ms,     1,105 / 15,344 ms
                Thread pool 3,105 / 189,340 ms, 4,570 / 190,766 ms
                Forking     2,990 / 45,201 ms,  2,920 / 48,136 ms
            """)
        plot(csv: csv, prefix: c.out + "/sweep")
    }
}

/// Draws seda-load's figures from a CSV (`seda-load plot`); a message when
/// gnuplot or seda-load is missing.
func plot(csv: String, prefix: String) {
    let exe = executableDirectory() + "/seda-load"
    do {
        let (status, _) = try runTool([exe, "plot", "--csv", csv, "--out", prefix], timeout: 60)
        print(
            status == 0
                ? "CSV: \(csv); figures: \(prefix)-*.svg (gnuplot)"
                : "CSV: \(csv); seda-load plot exited with \(status) (is gnuplot installed?)")
    } catch {
        print("CSV: \(csv); no figures: \(error)")
    }
}

/// A ms figure for a table.
func ms(_ x: Double) -> String { x.isNaN ? "-" : Stats.fixed(x, x >= 100 ? 0 : 2) }

/// " (N failed)" when a run had failures.
func failureNote(_ r: LoadRow) -> String { r.failures > 0 ? " (\(r.failures) failed)" : "" }
