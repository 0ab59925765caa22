#if canImport(Glibc)
    import Glibc
#endif

/// The seed's figures, drawn by gnuplot (SVG): completions/s and response
/// times against clients (closed loop) or offered rate (open loop), one line
/// per server; and the response-time histograms of the runs just made.
enum Plotter {
    static func figures(rows: [Row], histograms: [(String, [Bin])], prefix: String) throws {
        var labels: [String] = []
        for r in rows where !labels.contains(r.label) { labels.append(r.label) }
        var written: [String] = []
        for mode in ["closed", "open"] {
            let sel = rows.filter { $0.mode == mode }
            guard !sel.isEmpty else { continue }
            let x = mode == "open" ? "offered load (requests/s)" : "clients"
            var plots: [String] = []
            var rtPlots: [String] = []
            for (i, label) in labels.enumerated() {
                let mine = sel.filter { $0.label == label }
                    .sorted { mode == "open" ? $0.rate < $1.rate : $0.clients < $1.clients }
                guard !mine.isEmpty else { continue }
                let dat = "\(prefix)-\(mode)-\(i).dat"
                var text = "# x completions_per_s ok_per_s resp_p50_ms resp_p90_ms resp_max_ms\n"
                for r in mine {
                    let xv = mode == "open" ? fmt(r.rate, 1) : String(r.clients)
                    text +=
                        "\(xv) \(fmt(r.completionsPerS, 1)) \(fmt(r.okPerS, 1)) \(fmt(r.respP50, 3)) \(fmt(r.respP90, 3)) \(fmt(r.respMax, 3))\n"
                }
                try writeFile(dat, text)
                plots.append("'\(dat)' using 1:2 with linespoints title '\(label)'")
                rtPlots.append("'\(dat)' using 1:4 with linespoints title '\(label) median'")
                rtPlots.append("'\(dat)' using 1:6 with linespoints dashtype 2 title '\(label) max'")
            }
            let gp = "\(prefix)-\(mode).gp"
            let svg1 = "\(prefix)-\(mode)-completions.svg", svg2 = "\(prefix)-\(mode)-response.svg"
            var script = "set terminal svg size 800,500 dynamic\nset grid\nset key top left\n"
            script +=
                "set output '\(svg1)'\nset title 'Completions/s (8 KB page)'\nset xlabel '\(x)'\nset ylabel 'completions/s'\n"
            script += "plot " + plots.joined(separator: ", ") + "\n"
            script +=
                "set output '\(svg2)'\nset title 'Response time (from when each request was due)'\nset ylabel 'ms'\nset logscale y\n"
            script += "plot " + rtPlots.joined(separator: ", ") + "\n"
            try writeFile(gp, script)
            try gnuplot(gp)
            written += [svg1, svg2]
        }
        if !histograms.isEmpty {
            let gp = "\(prefix)-histogram.gp", svg = "\(prefix)-histogram.svg"
            var plots: [String] = []
            for (i, (name, bins)) in histograms.enumerated() where !bins.isEmpty {
                let dat = "\(prefix)-histogram-\(i).dat"
                var text = "# lo_ms hi_ms ok non2xx unanswered\n"
                for b in bins {
                    text += "\(fmt(b.loMs, 4)) \(fmt(b.hiMs, 4)) \(b.ok) \(b.other) \(b.unanswered)\n"
                }
                try writeFile(dat, text)
                plots.append("'\(dat)' using (sqrt($1*$2)):($3+$4+$5) with steps title '\(Row.clean(name))'")
            }
            if !plots.isEmpty {
                var script = "set terminal svg size 800,500 dynamic\nset grid\nset output '\(svg)'\n"
                script +=
                    "set title 'Response time histogram'\nset xlabel 'response time (ms)'\nset ylabel 'requests'\n"
                script += "set logscale x\nset logscale y\nplot " + plots.joined(separator: ", ") + "\n"
                try writeFile(gp, script)
                try gnuplot(gp)
                written.append(svg)
            }
        }
        eprint("seda-load: wrote " + written.joined(separator: ", "))
    }

    static func gnuplot(_ script: String) throws {
        // The script names only files this tool wrote; quote it for the shell anyway.
        let quoted =
            "'" + script.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
        let status = system("gnuplot " + quoted)
        if status != 0 {
            throw SedaLoadError("gnuplot failed on \(script) (is gnuplot-nox installed?)")
        }
    }
}
