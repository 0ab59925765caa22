import CSedaLoad

#if canImport(Glibc)
    import Glibc
#endif

/// One run's figures: a table row, a CSV row, a point of a figure.
struct Row {
    var label: String
    var mode: String  // "closed" or "open"
    var clients: Int
    var rate: Double
    var thinkMs: Double
    var requestsPerConnection: Int
    var durationS: Double
    var completionsPerS: Double
    var okPerS: Double
    var rejectedPerS: Double
    var otherPerS: Double
    var errors: Int
    var connects: Int
    var connectErrors: Int
    var unanswered: Int
    var respP50: Double, respP90: Double, respP99: Double, respMax: Double  // ms
    var rejP50: Double, rejP99: Double
    var connP50: Double, connP90: Double, connP99: Double, connMax: Double
    var fairness: Double
    var mbitS: Double
    var lagP99: Double

    static let columns = [
        "label", "mode", "clients", "rate", "think_ms", "requests_per_connection", "duration_s",
        "completions_per_s", "ok_per_s", "rejected_per_s", "other_per_s", "errors", "connects", "connect_errors",
        "unanswered", "resp_p50_ms", "resp_p90_ms", "resp_p99_ms", "resp_max_ms", "rejected_p50_ms",
        "rejected_p99_ms", "connect_p50_ms", "connect_p90_ms", "connect_p99_ms", "connect_max_ms", "fairness",
        "mbit_s", "client_lag_p99_ms",
    ]

    init(label: String, config c: sload_http_config_t, result r: sload_http_result_t) {
        func ms(_ ns: Int64) -> Double { Double(ns) / 1e6 }
        // Admitted responses and the unanswered requests (at their age: a lower bound) together.
        let all = sload_hist_create()!
        defer { sload_hist_destroy(all) }
        sload_hist_merge(all, r.response_ok)
        sload_hist_merge(all, r.unanswered)
        self.label = Row.clean(label)
        mode = c.rate > 0 ? "open" : "closed"
        clients = Int(c.clients)
        rate = c.rate
        thinkMs = c.think_ms
        requestsPerConnection = Int(c.requests_per_connection)
        durationS = r.window_s
        completionsPerS = r.completions_per_s
        okPerS = r.ok_per_s
        rejectedPerS = Double(r.rejected) / r.window_s
        otherPerS = Double(r.other_status) / r.window_s
        errors = Int(r.errors)
        connects = Int(r.connects)
        connectErrors = Int(r.connect_errors)
        unanswered = Int(r.outstanding)
        respP50 = ms(sload_hist_quantile(all, 0.5))
        respP90 = ms(sload_hist_quantile(all, 0.9))
        respP99 = ms(sload_hist_quantile(all, 0.99))
        respMax = ms(sload_hist_max(all))
        rejP50 = ms(sload_hist_quantile(r.response_other, 0.5))
        rejP99 = ms(sload_hist_quantile(r.response_other, 0.99))
        connP50 = ms(sload_hist_quantile(r.connect, 0.5))
        connP90 = ms(sload_hist_quantile(r.connect, 0.9))
        connP99 = ms(sload_hist_quantile(r.connect, 0.99))
        connMax = ms(sload_hist_max(r.connect))
        fairness = r.fairness
        mbitS = Double(r.body_bytes) * 8 / r.window_s / 1e6
        lagP99 = ms(sload_hist_quantile(r.send_lag, 0.99))
    }

    /// Labels go into CSV cells and file names: no commas, quotes or slashes.
    static func clean(_ s: String) -> String {
        String(s.map { ",\"/\n".contains($0) ? "_" : $0 })
    }

    var cells: [String] {
        [
            label, mode, String(clients), fmt(rate, 1), fmt(thinkMs, 1), String(requestsPerConnection),
            fmt(durationS, 1), fmt(completionsPerS, 1), fmt(okPerS, 1), fmt(rejectedPerS, 1), fmt(otherPerS, 1),
            String(errors), String(connects), String(connectErrors), String(unanswered), fmt(respP50, 3),
            fmt(respP90, 3), fmt(respP99, 3), fmt(respMax, 3), fmt(rejP50, 3), fmt(rejP99, 3), fmt(connP50, 3),
            fmt(connP90, 3), fmt(connP99, 3), fmt(connMax, 3), fmt(fairness, 4), fmt(mbitS, 2), fmt(lagP99, 3),
        ]
    }

    init?(cells c: [String]) {
        guard c.count == Row.columns.count else { return nil }
        func d(_ i: Int) -> Double? { Double(c[i]) }
        func n(_ i: Int) -> Int? { Int(c[i]) }
        guard let clients = n(2), let rate = d(3), let think = d(4), let rpc = n(5), let dur = d(6),
            let cps = d(7), let ok = d(8), let rej = d(9), let oth = d(10), let err = n(11), let con = n(12),
            let cerr = n(13), let un = n(14), let p50 = d(15), let p90 = d(16), let p99 = d(17), let mx = d(18),
            let r50 = d(19), let r99 = d(20), let c50 = d(21), let c90 = d(22), let c99 = d(23), let cmx = d(24),
            let fair = d(25), let mbit = d(26), let lag = d(27)
        else { return nil }
        label = c[0]
        mode = c[1]
        self.clients = clients
        self.rate = rate
        thinkMs = think
        requestsPerConnection = rpc
        durationS = dur
        completionsPerS = cps
        okPerS = ok
        rejectedPerS = rej
        otherPerS = oth
        errors = err
        connects = con
        connectErrors = cerr
        unanswered = un
        respP50 = p50
        respP90 = p90
        respP99 = p99
        respMax = mx
        rejP50 = r50
        rejP99 = r99
        connP50 = c50
        connP90 = c90
        connP99 = c99
        connMax = cmx
        fairness = fair
        mbitS = mbit
        lagP99 = lag
    }

    /// The seed's table: completions/s, connect and response times, fairness.
    static func table(_ rows: [Row]) -> String {
        let headers = [
            "server", "clients", "rate/s", "completions/s", "503/s", "errors", "connect p50/max ms",
            "response p50 ms", "p90", "p99", "max", "503 p99 ms", "fairness", "unanswered",
        ]
        let body = rows.map { r in
            [
                r.label, String(r.clients), r.rate > 0 ? fmt(r.rate, 0) : "-", fmt(r.completionsPerS, 0),
                fmt(r.rejectedPerS, 0), String(r.errors + r.connectErrors),
                fmt(r.connP50, 2) + " / " + fmt(r.connMax, 1), fmt(r.respP50, 2), fmt(r.respP90, 2),
                fmt(r.respP99, 2), fmt(r.respMax, 1), r.rejectedPerS > 0 ? fmt(r.rejP99, 2) : "-",
                fmt(r.fairness, 3), String(r.unanswered),
            ]
        }
        let all = [headers] + body
        let widths = headers.indices.map { c in all.map { $0[c].count }.max()! }
        func line(_ cells: [String]) -> String {
            "| "
                + cells.enumerated().map { c, s in s + String(repeating: " ", count: widths[c] - s.count) }
                .joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"
        return ([line(headers), rule] + body.map(line)).joined(separator: "\n")
    }

    static func read(csv path: String) throws -> [Row] {
        guard let text = readFile(path) else { throw SedaLoadError("cannot read \(path)") }
        var rows: [Row] = []
        for (i, line) in text.split(separator: "\n").enumerated() where i > 0 {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard let row = Row(cells: cells) else { throw SedaLoadError("\(path):\(i + 1): not a seda-load row") }
            rows.append(row)
        }
        return rows
    }
}

func appendCSV(_ row: Row, to path: String) throws {
    let fresh = access(path, F_OK) != 0
    var text = fresh ? Row.columns.joined(separator: ",") + "\n" : ""
    text += row.cells.joined(separator: ",") + "\n"
    try writeFile(path, text, append: true)
}

struct SedaLoadError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func writeFile(_ path: String, _ text: String, append: Bool = false) throws {
    guard let f = fopen(path, append ? "a" : "w") else {
        throw SedaLoadError("cannot write \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(f) }
    var t = text
    let ok = t.withUTF8 { fwrite($0.baseAddress, 1, $0.count, f) == $0.count }
    if !ok { throw SedaLoadError("cannot write \(path)") }
}
