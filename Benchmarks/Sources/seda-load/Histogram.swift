import CSedaLoad

/// A response-time histogram coarsened for people: 10 bins per decade of milliseconds.
struct Bin {
    var loMs: Double
    var hiMs: Double
    var ok: UInt64 = 0
    var other: UInt64 = 0  // non-2xx responses (503 ...)
    var unanswered: UInt64 = 0  // still waiting at the end (binned at their age)

    static let edges: [Double] = {
        // 0.01 ms ... 1000 s, 10 log-spaced bins per decade
        var e: [Double] = []
        var x = 0.01
        while x < 1_000_001 {
            for i in 0..<10 { e.append(x * pow10(Double(i) / 10)) }
            x *= 10
        }
        return e
    }()

    static func pow10(_ x: Double) -> Double {
        // 10^x for x in [0, 1) without Foundation: exp(x ln 10)
        var term = 1.0, sum = 1.0
        let y = x * 2.302585092994046
        for k in 1..<30 {
            term *= y / Double(k)
            sum += term
        }
        return sum
    }

    /// Bins holding every recorded value of the three histograms; empty bins at both ends dropped.
    static func decades(_ ok: OpaquePointer?, _ other: OpaquePointer?, _ unanswered: OpaquePointer?) -> [Bin] {
        var bins = zip(edges, edges.dropFirst()).map { Bin(loMs: $0, hiMs: $1) }
        func add(_ h: OpaquePointer?, _ kp: WritableKeyPath<Bin, UInt64>) {
            guard let h else { return }
            var cursor = 0
            var lo: Int64 = 0, hi: Int64 = 0
            var count: UInt64 = 0
            while sload_hist_next(h, &cursor, &lo, &hi, &count) != 0 {
                let mid = Double(lo + (hi - lo) / 2) / 1e6
                var i = bins.firstIndex { mid < $0.hiMs } ?? bins.count - 1
                if mid < bins[0].loMs { i = 0 }
                bins[i][keyPath: kp] += count
            }
        }
        add(ok, \.ok)
        add(other, \.other)
        add(unanswered, \.unanswered)
        guard let first = bins.firstIndex(where: { $0.total > 0 }),
            let last = bins.lastIndex(where: { $0.total > 0 })
        else { return [] }
        return Array(bins[first...last])
    }

    var total: UInt64 { ok + other + unanswered }

    /// A text histogram: one line per bin, a bar scaled to the largest bin.
    static func render(_ bins: [Bin]) -> String {
        guard let top = bins.map(\.total).max(), top > 0 else { return "  (no responses)" }
        return bins.map { b in
            let range = fmt(b.loMs, b.loMs < 1 ? 3 : 1) + "-" + fmt(b.hiMs, b.hiMs < 1 ? 3 : 1) + " ms"
            let bar = String(repeating: "#", count: Int((Double(b.total) / Double(top) * 50).rounded(.up)))
            var extra = ""
            if b.other > 0 { extra += " (non-2xx \(b.other))" }
            if b.unanswered > 0 { extra += " (unanswered \(b.unanswered))" }
            return "  " + String(repeating: " ", count: max(0, 22 - range.count)) + range + " "
                + String(repeating: " ", count: max(0, 9 - String(b.total).count)) + String(b.total) + " " + bar + extra
        }.joined(separator: "\n")
    }
}
