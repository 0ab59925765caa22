import Glibc

/// `seda-bench http`'s overload part: `/bottleneck` (1 ms of CPU per request
/// on a bounded pool of threads) pushed past its capacity. Capacity is
/// measured first (closed loop, no think time, one connection per client
/// kept open); then seda-load's open loop offers each multiple of it, on a
/// fresh server process per step (a collapsed server's backlog must not
/// spill into the next step). Every step is checked against issue 10's
/// targets and the verdict printed: a report, not an assertion.
struct HTTPOverload {
    let servers: [String]
    let factors: [Double]
    let duration: Double
    let capacityClients: Int
    let connections: Int
    let targetMs: Double
    let rejectMs: Double

    func run(_ c: HTTPBench.Context) throws {
        heading(
            "overload: /bottleneck (\(Stats.fixed(c.servers.bottleneckMs, 1)) ms CPU, \(c.servers.bottleneckThreads) threads), open loop at multiples of capacity"
        )
        let csv = c.out + "/overload.csv"
        unlink(csv)
        var capacities: [String: Double] = [:]
        var table = Table(headers: [
            "server", "x cap", "offered/s", "2xx/s", "goodput", "p50 ms", "p90", "p99", "503s", "503 p50", "503 p99",
            "conn err", "unanswered", "verdict",
        ])
        for name in servers {
            // seda-httpd with the controller is measured against the bottleneck's capacity without it.
            let capacityOf = name == "seda-httpd+target" && capacities["seda-httpd"] != nil ? "seda-httpd" : name
            if capacities[capacityOf] == nil {
                ioProgress("seda-bench http overload: \(capacityOf) capacity...\n")
                guard let cap = measureCapacity(capacityOf, c) else { continue }
                capacities[capacityOf] = cap
                print(
                    "\(capacityOf): capacity \(Stats.fixed(cap, 0)) requests/s (\(capacityClients) clients, no think time)"
                )
            }
            guard let capacity = capacities[capacityOf] else { continue }
            for f in factors {
                let rate = f * capacity
                ioProgress(
                    "seda-bench http overload: \(name) at \(Stats.fixed(f, 1))x (\(Stats.fixed(rate, 0))/s)...\n")
                guard let server = c.start(name) else { break }
                defer { server.stop() }
                let row: LoadRow
                do {
                    row = try c.load.open(
                        port: server.port, label: "\(name) \(Stats.fixed(f, 1))x", rates: [rate],
                        connections: connections, duration: duration, path: "/bottleneck", csv: csv)[0]
                } catch {
                    c.problems.note("\(name) at \(Stats.fixed(f, 1))x: \(error)")
                    table.add(
                        [name, Stats.fixed(f, 1), Stats.fixed(rate, 0)] + Array(repeating: "", count: 10) + [
                            "failed: \(error)"
                        ])
                    continue
                }
                let ok = row["ok_per_s"]
                let rejected = Int((row["rejected_per_s"] * row["duration_s"]).rounded())
                let expected = min(rate, capacity)
                var failed: [String] = []
                if !(row["resp_p90_ms"] <= 1.2 * targetMs) { failed.append("p90") }
                if !(ok >= 0.9 * expected) { failed.append("goodput") }
                if rejected > 0 && !(row["rejected_p99_ms"] <= rejectMs) { failed.append("503 time") }
                if row["connect_errors"] + row["errors"] > 0 { failed.append("errors") }
                var verdict = failed.isEmpty ? "PASS" : "FAIL (" + failed.joined(separator: ", ") + ")"
                if row["client_lag_p99_ms"] > 10 { verdict += " [client lag p99 \(ms(row["client_lag_p99_ms"])) ms]" }
                table.add([
                    name, Stats.fixed(f, 1), Stats.fixed(rate, 0), Stats.fixed(ok, 0),
                    Stats.fixed(100 * ok / capacity, 0) + "%", ms(row["resp_p50_ms"]), ms(row["resp_p90_ms"]),
                    ms(row["resp_p99_ms"]), "\(rejected)", rejected > 0 ? ms(row["rejected_p50_ms"]) : "-",
                    rejected > 0 ? ms(row["rejected_p99_ms"]) : "-",
                    "\(Int(row["connect_errors"] + row["errors"]))", "\(Int(row["unanswered"]))", verdict,
                ])
            }
        }
        print(table.render())
        print(
            """

            goodput: 2xx/s as a fraction of capacity. Targets (issue 10): admitted p90 <= 1.2 x \(Stats.fixed(targetMs, 0)) ms, \
            2xx/s >= 90% of min(offered, capacity), 503s answered within \(Stats.fixed(rejectMs, 0)) ms (p99), no connection \
            or request errors. Response times run from when a request was due; unanswered requests count at their age. \
            Measured here earlier for SwiftNIO with a 2-thread pool (issue 10): ~1,900/s capacity, at 2x p50 2.7 s, p90 4.9 s.
            """)
        plot(csv: csv, prefix: c.out + "/overload")
    }

    /// Saturating closed loop on a fresh server: its 2xx/s, or nil (printed why).
    private func measureCapacity(_ name: String, _ c: HTTPBench.Context) -> Double? {
        guard let server = c.start(name) else { return nil }
        defer { server.stop() }
        do {
            let row = try c.load.closed(
                port: server.port, label: "\(name) capacity", clients: [capacityClients], duration: duration,
                thinkMs: 0, perConnection: 0, path: "/bottleneck", csv: nil)[0]
            guard row["ok_per_s"] > 0 else {
                print("\(name): no 2xx from /bottleneck (does it serve /bottleneck?)")
                return nil
            }
            return row["ok_per_s"]
        } catch {
            print("\(name): capacity run failed: \(error) \(server.stderrTail())")
            c.problems.note("\(name) capacity: \(error)")
            return nil
        }
    }
}
