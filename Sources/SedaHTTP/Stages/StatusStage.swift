import Seda
import SedaMetrics
import SedaPrometheus

/// The status stage: `/status` (live per-stage statistics and the stage
/// graph) and `/metrics` (Prometheus). One dedicated thread: rendering
/// allocates and may run Graphviz, far from the request path.
final class StatusStage: EventHandler, @unchecked Sendable {
    // @unchecked: handle() runs on the stage's single thread; `runtime` is
    // set in setUp, before that thread starts.
    typealias Event = HTTPDeferredRequest
    let counters: HTTPCounterSet
    let graphviz: GraphvizRenderer
    private weak var runtime: Runtime?
    private var previous: RuntimeSnapshot?
    private var lastSVG: (at: Int64, svg: String?)? = nil
    private let prometheus = PrometheusEndpoint()
    private let exporter: StageMetricsExporter

    init(counters: HTTPCounterSet, graphviz: GraphvizRenderer = GraphvizRenderer()) {
        self.counters = counters
        self.graphviz = graphviz
        exporter = StageMetricsExporter(factory: prometheus.factory)
    }

    func setUp(_ context: StageContext) throws {
        runtime = context.runtime
    }

    func handle(_ batch: inout EventBatch<HTTPDeferredRequest>) throws {
        for i in 0..<batch.count {
            guard let request = batch.take(i) else { continue }
            if let runtime {
                let snapshot = runtime.snapshot()
                switch request.work {
                case .metrics:
                    request.result = .generated(
                        HTTPBuffer(metrics(snapshot)),
                        contentType: "text/plain; version=0.0.4; charset=utf-8")
                default:
                    request.result = .generated(HTTPBuffer(status(snapshot)), contentType: "text/html; charset=utf-8")
                }
            } else {
                request.result = .status(.serviceUnavailable)
            }
            request.reply()
        }
    }

    /// The status page, with rates since the previous one (at least 0.5 s back).
    func status(_ snapshot: RuntimeSnapshot) -> String {
        let earlier = previous
        if earlier == nil || snapshot.takenAtNanoseconds - earlier!.takenAtNanoseconds >= 500_000_000 {
            previous = snapshot
        }
        let dot = snapshot.graphviz(since: earlier)
        // Graphviz at most once a second.
        var svg: String? = nil
        if let last = lastSVG, snapshot.takenAtNanoseconds - last.at < 1_000_000_000 {
            svg = last.svg
        } else {
            svg = graphviz.svg(dot)
            lastSVG = (snapshot.takenAtNanoseconds, svg)
        }
        return StatusPage.html(
            snapshot: snapshot, earlier: earlier, counters: counters.totals,
            cache: counters.cache.statistics, graphSVG: svg, graphDOT: dot)
    }

    /// The Prometheus exposition: every stage's statistics, then the HTTP counters.
    func metrics(_ snapshot: RuntimeSnapshot) -> String {
        exporter.export(snapshot)
        return prometheus.render() + StatusPage.prometheus(counters: counters.totals, cache: counters.cache.statistics)
    }
}

/// The text of the status page and of the HTTP part of `/metrics`.
enum StatusPage {
    static func html(
        snapshot: RuntimeSnapshot, earlier: RuntimeSnapshot?, counters c: HTTPCounters.Snapshot,
        cache: PageCache.Statistics, graphSVG: String?, graphDOT: String
    ) -> String {
        let rates = earlier.map { snapshot.processingRates(since: $0) } ?? [:]
        var out = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
            <title>seda-httpd status</title>
            <style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}
            td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
            .hot{color:#b00;font-weight:bold}</style></head><body>
            <h1>seda-httpd</h1>

            """
        out += "<p>Requests \(c.requests) &middot; 2xx \(c.responses2xx) &middot; 3xx \(c.responses3xx)"
        out += " &middot; 4xx \(c.responses4xx) &middot; 5xx \(c.responses5xx) &middot; refused \(c.refused)"
        out += " &middot; shed (503) \(c.shed) &middot; timed out (408) \(c.timedOut)"
        out += " &middot; answered from cache \(c.servedFromCache) &middot; handed to stages \(c.deferred)</p>\n"
        out += "<p>Page cache: \(cache.entries) pages, \(cache.bytes) bytes; hits \(cache.hits), misses \(cache.misses)"
        out += ", revalidations \(cache.revalidations), evictions \(cache.evictions)</p>\n"
        out += "<h2>Stages</h2>\n<table><tr><th>stage</th><th>queue</th><th>peak</th><th>threads</th>"
        out += "<th>events/s</th><th>processed</th><th>queue wait p50 / p90 / p99</th>"
        out += "<th>service p50 / p90 / p99</th><th>rejected full / closed / admission</th><th>dropped</th></tr>\n"
        let bottleneck = snapshot.stages.filter { $0.queueDelay.count > 0 }
            .max { $0.queueDelay.p90Nanoseconds < $1.queueDelay.p90Nanoseconds }?.name
        for s in snapshot.stages {
            let admission = s.rejectedByReason.values.reduce(0, +)
            let reasons = s.rejectedByReason.sorted { $0.key < $1.key }.map { "\(escape($0.key)) \($0.value)" }
            let cls = s.name == bottleneck ? " class=\"hot\"" : ""
            out += "<tr\(cls)><td>\(escape(s.name))\(s.clogged ? " (clogged)" : "")</td><td>\(s.queueLength)</td>"
            out += "<td>\(s.queuePeak)</td><td>\(s.threads)</td>"
            out += "<td>\(rates[s.name].map { oneDecimal($0) } ?? "&ndash;")</td><td>\(s.processed)</td>"
            out += "<td>\(duration(s.queueDelay.p50Nanoseconds)) / \(duration(s.queueDelay.p90Nanoseconds))"
            out += " / \(duration(s.queueDelay.p99Nanoseconds))</td>"
            out += "<td>\(duration(s.serviceTime.p50Nanoseconds)) / \(duration(s.serviceTime.p90Nanoseconds))"
            out += " / \(duration(s.serviceTime.p99Nanoseconds))</td>"
            out += "<td>\(s.rejectedFull) / \(s.rejectedClosed) / \(admission)"
            out += reasons.isEmpty ? "" : " (\(reasons.joined(separator: ", ")))"
            out += "</td><td>\(s.dropped)</td></tr>\n"
        }
        out += "</table>\n<h2>Stage graph</h2>\n"
        if let graphSVG {
            out += graphSVG + "\n"
        } else {
            out += "<p>(Graphviz is not installed: the graph in DOT.)</p>\n<pre>\(escape(graphDOT))</pre>\n"
        }
        return out + "</body></html>\n"
    }

    static func prometheus(counters c: HTTPCounters.Snapshot, cache: PageCache.Statistics) -> String {
        var out = "# TYPE seda_http_requests_total counter\nseda_http_requests_total \(c.requests)\n"
        out += "# TYPE seda_http_responses_total counter\n"
        for (cls, n) in [
            ("2xx", c.responses2xx), ("3xx", c.responses3xx), ("4xx", c.responses4xx),
            ("5xx", c.responses5xx),
        ] {
            out += "seda_http_responses_total{class=\"\(cls)\"} \(n)\n"
        }
        out += "# TYPE seda_http_refused_total counter\nseda_http_refused_total \(c.refused)\n"
        out += "# TYPE seda_http_shed_total counter\nseda_http_shed_total \(c.shed)\n"
        out += "# TYPE seda_http_timeouts_total counter\nseda_http_timeouts_total \(c.timedOut)\n"
        out += "# TYPE seda_http_cache_hits_total counter\nseda_http_cache_hits_total \(cache.hits)\n"
        out += "# TYPE seda_http_cache_misses_total counter\nseda_http_cache_misses_total \(cache.misses)\n"
        out += "# TYPE seda_http_cache_evictions_total counter\nseda_http_cache_evictions_total \(cache.evictions)\n"
        out += "# TYPE seda_http_cache_bytes gauge\nseda_http_cache_bytes \(cache.bytes)\n"
        out += "# TYPE seda_http_cache_entries gauge\nseda_http_cache_entries \(cache.entries)\n"
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    static func duration(_ ns: UInt64) -> String {
        if ns >= 1_000_000_000 { return oneDecimal(Double(ns) / 1e9) + " s" }
        if ns >= 1_000_000 { return oneDecimal(Double(ns) / 1e6) + " ms" }
        if ns >= 1_000 { return oneDecimal(Double(ns) / 1e3) + " µs" }
        return "\(ns) ns"
    }

    static func oneDecimal(_ x: Double) -> String {
        let tenths = (x * 10).rounded()
        let whole = Int(tenths / 10), frac = Int(abs(tenths.truncatingRemainder(dividingBy: 10)))
        return "\(whole).\(frac)"
    }
}
