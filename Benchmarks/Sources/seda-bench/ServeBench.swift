import ArgumentParser
import CSedaBench
import CSedaCore
import Glibc
import Seda

/// `seda-bench serve`: a Seda server in a process of its own, for `seda-bench
/// echo` and `asocket` (which start it as a child so that its descriptors,
/// CPU and system calls are apart from the client's) and for `strace -c -f`.
/// Prints `seda-<lang>-<app>: listening on 127.0.0.1:<port>` on stdout,
/// serves until SIGINT or SIGTERM, then prints its totals on stderr.
struct ServeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a Seda echo or aSocket server until SIGINT/SIGTERM (the servers of echo and asocket).",
        discussion: """
            --lang c runs the server written on the C API (Benchmarks/Sources/CSedaBench/server_bench.c); \
            --lang swift the same server written with Seda's Swift API (IOHandler stages replicated per \
            shared thread). Both listen on 127.0.0.1 only.
            """
    )

    @Option(help: "echo or asocket.") var app: String = "echo"
    @Option(help: "c or swift.") var lang: String = "c"
    @Option(help: "select, poll, epoll, io_uring or default.") var poller: String = "default"
    @Option(help: "Shared threads (0: one per CPU).") var threads: Int = 0
    @Option(help: "Port (0: one the kernel picks).") var port: UInt16 = 0
    @Option(help: "reuseport (a listening socket per thread) or handoff (one, handed out in turn).")
    var acceptMode: String = "reuseport"
    @Option(help: "Idle timeout per connection in ms (0: none).") var idleTimeoutMs: Int = 0
    @Option(help: "aSocket packet size.") var packetSize: UInt32 = 8192
    @Option(help: "aSocket ack size.") var ackSize: UInt32 = 32

    func validate() throws {
        guard ["echo", "asocket"].contains(app) else { throw ValidationError("--app: echo or asocket") }
        guard ["c", "swift"].contains(lang) else { throw ValidationError("--lang: c or swift") }
        guard seda_poller_backend_parse(poller) >= 0 else { throw ValidationError("unknown poller '\(poller)'") }
        guard ["reuseport", "handoff"].contains(acceptMode) else {
            throw ValidationError("--accept-mode: reuseport or handoff")
        }
        guard threads >= 0, idleTimeoutMs >= 0, packetSize > 0, (1...256).contains(ackSize) else {
            throw ValidationError("bad --threads, --idle-timeout-ms, --packet-size or --ack-size")
        }
    }

    func run() throws {
        raiseDescriptorLimit()
        // Block the stop signals before any thread starts, so that sigwait
        // below is the one that takes them.
        var stop = sigset_t()
        sigemptyset(&stop)
        sigaddset(&stop, SIGINT)
        sigaddset(&stop, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &stop, nil)
        let name = "seda-\(lang)-\(app)"
        let handoff = acceptMode == "handoff"
        if lang == "c" {
            var o = seda_bench_server_options_t()
            o.app = app == "echo" ? Int32(SEDA_BENCH_SERVER_ECHO.rawValue) : Int32(SEDA_BENCH_SERVER_ASOCKET.rawValue)
            o.poller = seda_poller_backend_parse(poller)
            o.threads = UInt32(threads)
            o.port = port
            o.accept_mode = handoff ? Int32(SEDA_ACCEPT_HANDOFF.rawValue) : Int32(SEDA_ACCEPT_REUSEPORT.rawValue)
            o.idle_timeout_ns = Int64(idleTimeoutMs) * 1_000_000
            o.packet_size = packetSize
            o.ack_size = ackSize
            var server: OpaquePointer?
            let r = seda_bench_server_start(&o, &server)
            guard r == 0, let server else {
                throw ValidationError("\(name): \(String(cString: seda_strerror(r)))")
            }
            announce("\(name): listening on 127.0.0.1:\(seda_bench_server_port(server))")
            ioProgress("\(name): \(String(cString: seda_bench_server_describe(server)))\n")
            var sig: Int32 = 0
            sigwait(&stop, &sig)
            var st = seda_io_stats_t()
            seda_bench_server_stats(server, &st)
            printTotals(name, accepted: st.accepted, packets: st.packets_in, receives: st.reads, sends: st.writes)
            seda_bench_server_stop(server)
            return
        }
        let runtime = try Runtime(
            cpuThreads: threads == 0 ? nil : threads, poller: PollerBackend(name: poller) ?? .default)
        let options = ListenerOptions(
            backlog: 4096, acceptMode: handoff ? .handOff : .reusePort,
            connection: ConnectionOptions(
                idleTimeout: idleTimeoutMs > 0 ? .milliseconds(idleTimeoutMs) : nil))
        let stageOptions = StageOptions(queueCapacity: 65536)
        let server: SocketServer
        if app == "echo" {
            server = try SocketServer(
                runtime: runtime, name: name, port: port, options: options, stageOptions: stageOptions
            ) { _ in EchoIO() }
        } else {
            let ack = [UInt8](repeating: 0x2e, count: Int(ackSize))
            server = try SocketServer(
                runtime: runtime, name: name, port: port, options: options, stageOptions: stageOptions
            ) { _ in AsocketIO(packetSize: UInt64(packetSize), ack: ack) }
        }
        announce("\(name): listening on 127.0.0.1:\(server.port)")
        ioProgress("\(name): \(runtime.pollerDescription)\n")
        var sig: Int32 = 0
        sigwait(&stop, &sig)
        let stats = (0..<runtime.cpuThreads).map { runtime.ioStatistics(thread: $0) }
        printTotals(
            name, accepted: stats.map(\.accepted).reduce(0, +), packets: stats.map(\.packetsIn).reduce(0, +),
            receives: stats.map(\.receives).reduce(0, +), sends: stats.map(\.sends).reduce(0, +))
        server.close()
        try runtime.shutdown(.handBack, timeout: .seconds(5))
    }

    private func printTotals(_ name: String, accepted: UInt64, packets: UInt64, receives: UInt64, sends: UInt64) {
        ioProgress(
            "\(name): \(accepted) connections, \(packets) packets, \(receives) receives, \(sends) sends\n")
    }
}

/// The echo server's handler: every packet goes back without a copy.
struct EchoIO: IOHandler {
    func handle(_ batch: inout IOEventBatch) throws {
        for i in 0..<batch.count {
            guard let ev = batch[i] else { continue }
            switch ev.kind {
            case .packet:
                let c = ev.connection!
                try? c.write(packet: batch.take(i)!)
            case .unwritable: ev.connection?.pauseReading()
            case .writable: ev.connection?.resumeReading()
            default: break
            }
        }
    }
}

/// The aSocket server's per-connection count.
final class AckCount {
    var bytes: UInt64 = 0
    var acked: UInt64 = 0
}

/// The seed's aSocket server: an ack per complete packet received.
struct AsocketIO: IOHandler {
    let packetSize: UInt64
    let ack: [UInt8]

    func handle(_ batch: inout IOEventBatch) throws {
        batch.forEach { ev in
            guard ev.kind == .packet, let c = ev.connection else { return }
            let count: AckCount
            if let s = c.userState as? AckCount {
                count = s
            } else {
                count = AckCount()
                c.userState = count
            }
            count.bytes += UInt64(ev.bytes.count)
            while count.acked < count.bytes / packetSize {
                try? c.write(ack)
                count.acked += 1
            }
        }
    }
}

/// Raises the soft descriptor limit to the hard one (10,000 connections).
func raiseDescriptorLimit() {
    var rl = rlimit()
    if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 && rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
    }
}
