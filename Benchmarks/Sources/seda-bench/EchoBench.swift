import ArgumentParser
import CSedaLoad
import Glibc

/// `seda-bench echo`: request/response echo (64 B and 8 KB messages, one in
/// flight per connection, every byte checked) at 100 and 1,000 connections,
/// Seda on each poller backend beside an echo server written on libuv (the
/// C event loop people pick for this), with the same number of threads and
/// the same client, in one run. Each server runs as a child process.
struct EchoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "Echo messages/s and p50/p99 latency: Seda (each backend, C and Swift) beside libuv.",
        discussion: """
            Servers: `seda-bench serve` (this program, --lang c: the C API, --lang swift: IOHandler stages) \
            and `seda-baseline echo-uv`, built beside it. The client is CSedaLoad's echo engine (epoll, \
            --client-threads threads) in this process. --accept-modes reuseport,handoff compares \
            SO_REUSEPORT listeners with a hand-off at accept; --idle-timeout-ms adds rows with a per \
            connection idle timeout (the timer's cost per request).
            """
    )

    @Option(parsing: .upToNextOption, help: "Connection counts.") var connections: [UInt32] = [100, 1000]
    @Option(parsing: .upToNextOption, help: "Message sizes in bytes.") var sizes: [UInt32] = [64, 8192]
    @Option(parsing: .upToNextOption, help: "Seda's poller backends.") var backends: [String] = ["epoll", "io_uring"]
    @Option(parsing: .upToNextOption, help: "Seda servers: c, swift.") var langs: [String] = ["c", "swift"]
    @Option(parsing: .upToNextOption, help: "reuseport, handoff.") var acceptModes: [String] = ["reuseport"]
    @Option(help: "Also run Seda with this idle timeout per connection (ms; 0: not).") var idleTimeoutMs: Int = 0
    @Flag(help: "Leave libuv out.") var noLibuv = false
    @Option(help: "Server threads (Seda's shared threads, libuv's loops).") var threads: Int = 2
    @Option(help: "Client threads.") var clientThreads: UInt32 = 2
    @Option(help: "Seconds measured per row.") var duration: Double = 3
    @Option(help: "Seconds of warm-up per row.") var warmup: Double = 1

    func run() throws {
        var servers: [ServerSpec] = []
        for lang in langs {
            for backend in backends {
                for mode in acceptModes {
                    servers.append(.seda(lang: lang, app: "echo", backend: backend, threads: threads, acceptMode: mode))
                }
                if idleTimeoutMs > 0 {
                    servers.append(
                        .seda(lang: lang, app: "echo", backend: backend, threads: threads, idleTimeoutMs: idleTimeoutMs)
                    )
                }
            }
        }
        if !noLibuv { servers.append(.baseline("echo-uv", ["--threads", "\(threads)"])) }
        var table = Table(headers: ["size", "conns", "server", "msg/s", "Mbit/s", "p50 µs", "p99 µs", "vs libuv"])
        for size in sizes {
            for conns in connections {
                var rows: [(String, sload_echo_result_t?)] = []
                for spec in servers {
                    ioProgress("seda-bench echo: \(size) B x \(conns) connections, \(spec.label)...\n")
                    rows.append((spec.label, try? measure(spec, size: size, connections: conns)))
                }
                let anchor = rows.first { $0.0 == "echo-uv" }?.1?.messages_per_s
                for (label, r) in rows {
                    guard var r else {
                        table.add(["\(size)", "\(conns)", label, "failed", "", "", "", ""])
                        continue
                    }
                    let p50 = Double(sload_hist_quantile(r.latency, 0.5)) / 1000
                    let p99 = Double(sload_hist_quantile(r.latency, 0.99)) / 1000
                    let errors = r.io_errors + r.mismatches + r.connect_errors
                    table.add([
                        "\(size)", "\(conns)", label + (errors > 0 ? " (\(errors) errors)" : ""),
                        Stats.fixed(r.messages_per_s, 0), Stats.fixed(r.mbit_s, 1), Stats.fixed(p50, 1),
                        Stats.fixed(p99, 1), anchor.map { Stats.fixed(r.messages_per_s / $0, 2) } ?? "-",
                    ])
                    sload_echo_result_free(&r)
                }
            }
        }
        print(table.render())
    }

    private func measure(_ spec: ServerSpec, size: UInt32, connections: UInt32) throws -> sload_echo_result_t {
        let server = try spec.start()
        defer { server.stop() }
        var cfg = sload_echo_config_t()
        sload_echo_defaults(&cfg, UInt16(server.port), connections, size)
        cfg.threads = clientThreads
        cfg.warmup_s = warmup
        cfg.duration_s = duration
        cfg.progress = 0
        var r = sload_echo_result_t()
        let rc = sload_echo_run(&cfg, &r)
        guard rc == 0 else { throw BenchError("\(spec.label): client: \(rc)") }
        return r
    }
}

/// `seda-bench asocket`: the seed's aSocket benchmark. Each client connection
/// sends packets of 8 KB and waits for a 32-byte ack after each; aggregate
/// Mbit/s from 1 to 10,000 connections, Seda (each backend) beside a
/// thread-per-connection blocking server written for the comparison.
struct AsocketBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asocket",
        abstract: "aSocket Mbit/s vs connections: Seda (each backend) beside a thread-per-connection server.",
        discussion: """
            The seed: 1000 packets of 8 KB per connection. With --duration each row measures that many \
            seconds once every connection is up (10,000 x 1000 x 8 KB would be 82 GB). Targets (issue 9): \
            Seda flat within 15% from 100 to 10,000 connections, and at 1,000 and more at least twice the \
            threaded server.
            """
    )

    @Option(parsing: .upToNextOption, help: "Connection counts.")
    var connections: [UInt32] = [1, 10, 100, 1000, 10000]
    @Option(parsing: .upToNextOption, help: "Seda's poller backends.") var backends: [String] = ["epoll", "io_uring"]
    @Option(parsing: .upToNextOption, help: "Seda servers: c, swift.") var langs: [String] = ["c"]
    @Option(parsing: .upToNextOption, help: "reuseport, handoff.") var acceptModes: [String] = ["reuseport"]
    @Flag(help: "Leave the threaded server out.") var noThreaded = false
    @Option(help: "Seda's shared threads.") var threads: Int = 2
    @Option(help: "Client threads.") var clientThreads: UInt32 = 2
    @Option(help: "Packets per connection.") var packets: UInt32 = 1000
    @Option(help: "Seconds measured per row (0: until every packet is acked).") var duration: Double = 3

    func run() throws {
        var servers: [ServerSpec] = []
        for lang in langs {
            for backend in backends {
                for mode in acceptModes {
                    servers.append(
                        .seda(lang: lang, app: "asocket", backend: backend, threads: threads, acceptMode: mode))
                }
            }
        }
        if !noThreaded { servers.append(.baseline("asocket-threaded")) }
        var table = Table(headers: ["conns", "server", "connect s", "Mbit/s", "packets", "vs threaded"])
        for conns in connections {
            var rows: [(String, sload_asocket_result_t?)] = []
            for spec in servers {
                ioProgress("seda-bench asocket: \(conns) connections, \(spec.label)...\n")
                rows.append((spec.label, try? measure(spec, connections: conns)))
            }
            let anchor = rows.first { $0.0 == "asocket-threaded" }?.1?.mbit_s
            for (label, r) in rows {
                guard let r else {
                    table.add(["\(conns)", label, "failed", "", "", ""])
                    continue
                }
                let errors = r.io_errors + r.protocol_errors + r.connect_errors
                table.add([
                    "\(conns)", label + (errors > 0 ? " (\(errors) errors)" : ""), Stats.fixed(r.connect_s, 3),
                    Stats.fixed(r.mbit_s, 1),
                    "\(r.packets_acked)", anchor.map { $0 > 0 ? Stats.fixed(r.mbit_s / $0, 2) : "-" } ?? "-",
                ])
            }
        }
        print(table.render())
    }

    private func measure(_ spec: ServerSpec, connections: UInt32) throws -> sload_asocket_result_t {
        let server = try spec.start()
        defer { server.stop() }
        var cfg = sload_asocket_config_t()
        sload_asocket_defaults(&cfg, UInt16(server.port), connections)
        cfg.packets = packets
        cfg.threads = clientThreads
        cfg.duration_s = duration
        cfg.progress = 0
        var r = sload_asocket_result_t()
        let rc = sload_asocket_run(&cfg, &r)
        guard rc == 0 else { throw BenchError("\(spec.label): client: \(rc)") }
        return r
    }
}
