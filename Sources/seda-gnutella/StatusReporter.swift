import Glibc
import Seda
import SedaGnutella
import Synchronization

/// Prints the node's status every interval on stderr: a human line, and a
/// `gnutella-status:` line of key=value pairs that seda-bench reads.
final class StatusReporter: Sendable {
    let node: GnutellaNode
    let runtime: Runtime
    let interval: Double
    private let stopping = Atomic<Bool>(false)
    private let thread = Atomic<UInt>(0)
    private let started = SedaClock.monotonic.now

    init(node: GnutellaNode, runtime: Runtime, interval: Double) {
        self.node = node
        self.runtime = runtime
        self.interval = interval
    }

    func start() throws -> StatusReporter {
        let ctx = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(
            &t, nil,
            { ctx in
                Unmanaged<StatusReporter>.fromOpaque(ctx!).takeRetainedValue().loop()
                return nil
            }, ctx)
        guard rc == 0 else {
            Unmanaged<StatusReporter>.fromOpaque(ctx).release()
            throw SedaError.system(errno: rc)
        }
        thread.store(t, ordering: .releasing)
        return self
    }

    /// Ends the loop (within 20 ms) and joins it.
    func stop() {
        stopping.store(true, ordering: .releasing)
        pthread_join(thread.load(ordering: .acquiring), nil)
    }

    private func loop() {
        var previous: GnutellaStatistics.Snapshot?
        var previousAt = SedaClock.monotonic.now
        var next = started
        while true {
            next += Int64(interval * 1e9)
            while !stopping.load(ordering: .acquiring) && SedaClock.monotonic.now < next {
                var step = timespec(tv_sec: 0, tv_nsec: 20_000_000)
                nanosleep(&step, nil)
            }
            if stopping.load(ordering: .acquiring) { return }
            let now = SedaClock.monotonic.now
            let s = node.statistics.snapshot()
            let seconds = Double(now - previousAt) / 1e9
            let snap = runtime.snapshot()
            let router = snap[stage: node.routerStage], logger = snap[stage: node.loggerStage]
            var line = "seda-gnutella: " + s.statusLine(since: previous, seconds: seconds)
            line += " | routes \(node.routeCount)"
            line +=
                " | queues router \(router?.queueLength ?? 0) logger \(logger?.queueLength ?? 0)"
                + " (\(logger?.threads ?? 0) threads)"
            // Every stage of the node that waited: queue now / peak, queueing delay p50 / p99 (since start).
            for st in snap.stages
            where st.name.hasPrefix(node.serverStage) || st.name == node.routerStage || st.name == node.loggerStage {
                let d = st.queueDelay
                line +=
                    " | \(st.name) q \(st.queueLength)/\(st.queuePeak) delay p50 \(d.p50Nanoseconds / 1000) µs"
                    + " p99 \(d.p99Nanoseconds / 1000) µs"
            }
            line += "\n"
            var kv = "gnutella-status: t_s=\(Double(now - started) / 1e9)"
            kv += " received=\(s.receivedTotal) forwarded=\(s.forwardedTotal) routes=\(node.routeCount)"
            kv += " open=\(s.openConnections) router_queue=\(router?.queueLength ?? 0)"
            kv += " logger_queue=\(logger?.queueLength ?? 0) logger_threads=\(logger?.threads ?? 0)"
            for t in PayloadType.allCases { kv += " received_\(t)=\(s.received[t] ?? 0)" }
            for r in DropReason.allCases { kv += " dropped_\(r.description.replacingDashes)=\(s.dropped[r] ?? 0)" }
            for r in CloseReason.allCases { kv += " closed_\(r.description.replacingDashes)=\(s.closed[r] ?? 0)" }
            kv += " router_refused=\(s.dropped[.routerRefused] ?? 0) cleanup_ticks_dropped=\(s.cleanupTicksDropped)"
            kv += " rss_kb=\(residentKilobytes())\n"
            FileHandleStderr.write(line + kv)
            previous = s
            previousAt = now
        }
    }
}

extension String {
    var replacingDashes: String { String(map { $0 == "-" ? "_" : $0 }) }
}

/// This process's resident set, KB (from /proc/self/status).
func residentKilobytes() -> Int {
    guard let f = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(f) }
    var buf = [CChar](repeating: 0, count: 256)
    while fgets(&buf, Int32(buf.count), f) != nil {
        let line = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        if line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: " \tkB\n")) ?? 0
        }
    }
    return 0
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

/// The logger's query log: one line per query, appended.
final class QueryLogFile: @unchecked Sendable {
    // @unchecked: the FILE is written under `lock`.
    private let file: UnsafeMutablePointer<FILE>
    private let lock = Lock()
    private let clock: SedaClock

    init(path: String, clock: SedaClock) throws {
        guard let f = fopen(path, "a") else { throw SedaError.system(errno: errno) }
        file = f
        self.clock = clock
    }

    func write(_ d: Descriptor) {
        let text: String
        if case .query(let q)? = try? d.parsePayload() { text = q.criteriaText } else { text = "" }
        let line = "\(clock.now) \(d.origin) ttl=\(d.ttl) hops=\(d.hops) \(text)\n"
        lock.locked { _ = fputs(line, file) } as Void
    }

    func close() { lock.locked { _ = fclose(file) } as Void }
}

/// A pthread mutex for the command line's own state.
final class Lock: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}
