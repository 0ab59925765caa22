import CSedaCore
import Glibc

/// What a connection past its output limit gets.
public enum ClogPolicy: Sendable, Equatable {
    /// Closed, with ``IOEventKind/closed`` carrying `ENOBUFS`.
    case close
    /// The write is refused (`ENOBUFS`), ``IOEventKind/clogged`` is
    /// delivered once, and writes are refused until output drains to the
    /// low watermark (``IOEventKind/writable``).
    case notify
}

/// A connection's settings. Zero values take the C core's defaults.
public struct ConnectionOptions: Sendable, Equatable {
    /// Queued output (bytes in memory) at which ``IOEventKind/unwritable`` is
    /// delivered (default 64 KiB).
    public var highWatermark: Int = 0
    /// ... and at which ``IOEventKind/writable`` follows (default 32 KiB).
    public var lowWatermark: Int = 0
    /// The most output a connection may queue (default 1 MiB): a slow reader
    /// never holds more of the server's memory than this.
    public var hardLimit: Int = 0
    /// What a write past the hard limit does.
    public var clogPolicy: ClogPolicy = .close
    /// Close after this long without a byte received or sent (nil: never).
    public var idleTimeout: Duration? = nil
    /// Keep Nagle's algorithm (default: `TCP_NODELAY`).
    public var nagle: Bool = false
    /// Stay open for writing after the peer's end of stream until the
    /// application closes (default: close once ``IOEventKind/readEOF`` was
    /// handled and the output flushed).
    public var halfClose: Bool = false

    public init(
        highWatermark: Int = 0, lowWatermark: Int = 0, hardLimit: Int = 0, clogPolicy: ClogPolicy = .close,
        idleTimeout: Duration? = nil, nagle: Bool = false, halfClose: Bool = false
    ) {
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
        self.hardLimit = hardLimit
        self.clogPolicy = clogPolicy
        self.idleTimeout = idleTimeout
        self.nagle = nagle
        self.halfClose = halfClose
    }

    var cValue: seda_conn_options_t {
        var o = seda_conn_options_t()
        o.high_watermark = max(highWatermark, 0)
        o.low_watermark = max(lowWatermark, 0)
        o.hard_limit = max(hardLimit, 0)
        o.clog_policy = clogPolicy == .notify ? Int32(SEDA_CLOG_NOTIFY.rawValue) : Int32(SEDA_CLOG_CLOSE.rawValue)
        o.idle_timeout_ns = idleTimeout?.saturatingNanoseconds ?? 0
        o.nagle = nagle ? 1 : 0
        o.half_close = halfClose ? 1 : 0
        return o
    }
}

/// How a listener spreads connections over the shared threads.
public enum AcceptMode: Sendable, Equatable {
    /// One `SO_REUSEPORT` socket per shared thread: the kernel spreads
    /// connections and each thread accepts its own (the default).
    case reusePort
    /// One socket accepted on thread 0, connections handed to the threads in turn.
    case handOff
}

/// A listener's settings.
public struct ListenerOptions: Sendable, Equatable {
    /// `listen(2)`'s backlog (0: 511).
    public var backlog: Int = 0
    public var acceptMode: AcceptMode = .reusePort
    /// The most connections open at once (nil: no limit). At the limit
    /// accepting pauses: further connections wait in the kernel's backlog.
    public var maxConnections: Int? = nil
    /// For every accepted connection.
    public var connection = ConnectionOptions()

    public init(
        backlog: Int = 0, acceptMode: AcceptMode = .reusePort, maxConnections: Int? = nil,
        connection: ConnectionOptions = ConnectionOptions()
    ) {
        self.backlog = backlog
        self.acceptMode = acceptMode
        self.maxConnections = maxConnections
        self.connection = connection
    }
}

/// Listening sockets on the runtime's shared threads (Sandstorm's listen
/// request): accepted connections send their events to the listener's read
/// stage from the first byte on. Closed by ``close()`` or when released.
///
/// Thread rules: every method may be called from any thread; they act
/// asynchronously (each thread's socket is changed by that thread).
public final class Listener: @unchecked Sendable {
    // @unchecked: the C listener is safe to call from any thread.
    let pointer: OpaquePointer
    private let closed = AtomicInt()
    /// The stages it feeds, kept alive as long as it may feed them.
    private let stages: [IOStage]

    init(pointer: OpaquePointer, stages: [IOStage]) {
        self.pointer = pointer
        self.stages = stages
    }

    deinit { close() }

    /// The port it listens on (the one the kernel chose for port 0).
    public var port: UInt16 { seda_listener_port(pointer) }

    /// Connections of this listener open now.
    public var connections: Int { Int(seda_listener_connections(pointer)) }

    /// Stops accepting (connections wait in the backlog) until ``resume()``.
    public func suspend() throws(SedaError) { _ = try SedaError.check(seda_listener_suspend(pointer)) }

    /// Accepts again.
    public func resume() throws(SedaError) { _ = try SedaError.check(seda_listener_resume(pointer)) }

    /// Stops accepting and closes the listening sockets; accepted
    /// connections stay open. Closing twice does nothing.
    public func close() {
        if closed.add(1) == 1 { seda_listener_close(pointer) }  // add returns the new value
    }
}

/// What one shared thread's socket layer has done (`seda_io_stats_t`).
public struct IOStatistics: Sendable, Equatable {
    public var accepted: UInt64
    public var refused: UInt64
    public var emfileEpisodes: UInt64
    public var connects: UInt64
    public var connectFailed: UInt64
    public var connectionsOpen: UInt64
    public var packetsIn: UInt64
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    public var receives: UInt64
    public var sends: UInt64
    public var timeouts: UInt64
    public var clogged: UInt64
    public var stalls: UInt64

    init(_ s: seda_io_stats_t) {
        accepted = s.accepted
        refused = s.refused
        emfileEpisodes = s.emfile_episodes
        connects = s.connects
        connectFailed = s.connect_failed
        connectionsOpen = s.connections_open
        packetsIn = s.packets_in
        bytesIn = s.bytes_in
        bytesOut = s.bytes_out
        receives = s.reads
        sends = s.writes
        timeouts = s.timeouts
        clogged = s.clogged
        stalls = s.stalls
    }
}

extension Runtime {
    /// Listens on `host` (a numeric IPv4 or IPv6 address) and `port` (0: one
    /// the kernel chooses, see ``Listener/port``). Each accepted connection
    /// sends its events to `readStage` (the replica of its thread when the
    /// stage is replicated per thread) from the first byte on;
    /// ``IOEventKind/accepted`` goes to `acceptStage` if given (with no
    /// `readStage`, its handler gives each connection a stage with
    /// ``Connection/sendEvents(to:)`` and ``Connection/resumeReading()``).
    /// Throws ``SedaError/invalidArgument`` (bad address, no stage),
    /// `.system(errno: EADDRINUSE)` and the like, ``SedaError/closed`` after
    /// a shutdown.
    public func listen(
        host: String = "127.0.0.1", port: UInt16 = 0, readStage: IOStage?, acceptStage: IOStage? = nil,
        options: ListenerOptions = ListenerOptions()
    ) throws(SedaError) -> Listener {
        var lo = seda_listen_options_t()
        lo.port = port
        lo.backlog = Int32(clamping: options.backlog)
        lo.accept_mode =
            options.acceptMode == .handOff ? Int32(SEDA_ACCEPT_HANDOFF.rawValue) : Int32(SEDA_ACCEPT_REUSEPORT.rawValue)
        lo.max_connections = UInt32(clamping: options.maxConnections ?? 0)
        lo.conn = options.connection.cValue
        lo.accept_sink = acceptStage?.sink(forThread: 0)
        var sinks: [OpaquePointer?] = (0..<cpuThreads).map { readStage?.sink(forThread: $0) }
        var ls: OpaquePointer?
        let r = host.withCString { h in
            lo.host = h
            return sinks.withUnsafeMutableBufferPointer { buf in
                if readStage != nil { lo.read_sinks = UnsafePointer(buf.baseAddress) }
                return seda_listen(handle, &lo, &ls)
            }
        }
        _ = try SedaError.check(r)
        return Listener(pointer: ls!, stages: [readStage, acceptStage].compactMap { $0 })
    }

    /// Connects to `host` (numeric) and `port` without blocking; the outcome
    /// arrives on `stage` as ``IOEventKind/connected`` (the connection then
    /// reads into `stage`) or ``IOEventKind/connectFailed`` (refused,
    /// unreachable, `timeout` passed: ``SedaError/timedOut``), carrying `tag`.
    /// The connection belongs to shared thread `thread` (nil: the calling
    /// thread if it is one, else the threads in turn); with a stage
    /// replicated per thread, that thread's replica gets its events.
    public func connect(
        host: String, port: UInt16, stage: IOStage, tag: UInt64 = 0, timeout: Duration? = nil, thread: Int? = nil,
        options: ConnectionOptions = ConnectionOptions()
    ) throws(SedaError) {
        let n = cpuThreads
        if let t = thread, t < 0 || t >= n { throw .invalidArgument }
        let owner: Int
        if let t = thread {
            owner = t
        } else if case let i = seda_runtime_thread_index(handle), i >= 0 {
            owner = Int(i)
        } else {
            owner = nextConnectThread.add(1) % n
        }
        var co = seda_connect_options_t()
        co.port = port
        co.sink = stage.sink(forThread: owner)
        co.tag = tag
        co.timeout_ns = timeout?.saturatingNanoseconds ?? 0
        co.thread = Int32(owner)
        co.conn = options.cValue
        let r = host.withCString { h in
            co.host = h
            return seda_connect(handle, &co)
        }
        _ = try SedaError.check(r)
    }

    /// The socket layer's counters of shared thread `thread`.
    public func ioStatistics(thread: Int) -> IOStatistics {
        var s = seda_io_stats_t()
        _ = seda_runtime_io_stats(handle, UInt32(clamping: thread), &s)
        return IOStatistics(s)
    }
}

/// A server in one piece: an I/O stage replicated per shared thread (each
/// replica with its own handler from `makeHandler`) and a listener feeding
/// it, so that every connection is served on the thread that accepted it.
///
///     let server = try SocketServer(runtime: rt, name: "echo", port: 0) { _ in EchoHandler() }
///     print(server.port)
public final class SocketServer: Sendable {
    /// The stage serving the connections.
    public let stage: IOStage
    /// The listening sockets.
    public let listener: Listener

    public init<H: IOHandler>(
        runtime: Runtime, name: String, host: String = "127.0.0.1", port: UInt16 = 0,
        options: ListenerOptions = ListenerOptions(), stageOptions: StageOptions = StageOptions(),
        makeHandler: (Int) throws -> H
    ) throws {
        stage = try runtime.addIOStage(name, replicas: .perThread, options: stageOptions, makeHandler: makeHandler)
        listener = try runtime.listen(host: host, port: port, readStage: stage, options: options)
    }

    /// The port it listens on.
    public var port: UInt16 { listener.port }

    /// Stops accepting; open connections carry on until they close or the
    /// runtime shuts down.
    public func close() { listener.close() }
}

/// Connects from outside the runtime's threads take the threads in turn.
private let nextConnectThread = AtomicInt()
