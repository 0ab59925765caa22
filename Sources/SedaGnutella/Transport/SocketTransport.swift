import Glibc
import Seda

/// TCP for the Gnutella stages on Seda's socket layer (docs/design/io.md
/// §3-4): GnuServer is an I/O stage replicated per shared thread, so a
/// connection's bytes are handshaken, framed and parsed by the worker that
/// read them, and each descriptor goes from there to the router's queue.
///
/// - Accepting: the listener hands every accepted connection to the
///   replica on thread 0 (``IOEventKind/accepted``), which opens its
///   session in the ``GnutellaServer`` and only then points the connection
///   at its own thread's replica and starts reading it, so no byte can
///   arrive before its session exists (and a peer that connects and says
///   nothing has a session for the handshake sweep to close).
/// - Dialling (``connect(to:)``, the catcher's ``PeerConnector``): Seda's
///   non-blocking connect, the address carried in the tag;
///   ``IOEventKind/connected`` opens an outbound session on the owner
///   thread, ``IOEventKind/connectFailed`` is reported to the server.
/// - Writing: ``SocketLink`` writes a descriptor's own buffer with
///   `Connection.write(buffer:retaining:)` (zero copy: the descriptor is
///   retained until the bytes are sent), the handshake strings by copy.
///   Writes from the router or the logger on another thread are posted to
///   the owner thread by the socket layer.
/// - The per-connection outgoing limit is the socket layer's hard limit:
///   past it a connection is closed (``ClogPolicy/close``: `CLOSED` with
///   ENOBUFS, counted ``CloseReason/clogged``) or the write refused and
///   ``IOEventKind/clogged`` delivered (``ClogPolicy/notify``), on which the
///   server closes the connection.
///
/// Thread rules: any thread may call every method.
public final class SocketTransport: PeerConnector, Sendable {
    public struct Options: Sendable, Equatable {
        /// The address to listen on (127.0.0.1 unless told otherwise).
        public var host: IPv4Address = .loopback
        /// The port to listen on (0: one the kernel picks, see ``port``).
        public var port: UInt16 = 0
        /// Bytes of output a connection may hold for a peer that does not
        /// read (the socket layer's hard limit); nil: no limit.
        public var hardLimit: Int? = 1 << 20
        /// What a write past ``hardLimit`` does.
        public var clogPolicy: ClogPolicy = .close
        /// Connections of the listener open at once (nil: no limit); at the
        /// limit accepting pauses and later peers wait in the backlog.
        public var maxConnections: Int? = nil
        /// How long a dial may take before it counts as failed.
        public var connectTimeout: Duration = .seconds(5)

        public init(
            host: IPv4Address = .loopback, port: UInt16 = 0, hardLimit: Int? = 1 << 20,
            clogPolicy: ClogPolicy = .close, maxConnections: Int? = nil, connectTimeout: Duration = .seconds(5)
        ) {
            self.host = host
            self.port = port
            self.hardLimit = hardLimit
            self.clogPolicy = clogPolicy
            self.maxConnections = maxConnections
            self.connectTimeout = connectTimeout
        }

        /// Every connection's settings: the hard limit, and watermarks
        /// under it (the handlers do not use the watermark events).
        public var connection: ConnectionOptions {
            let hard = max(hardLimit ?? Int.max, 1)
            let high = min(hard, 64 * 1024)
            return ConnectionOptions(
                highWatermark: high, lowWatermark: high / 2, hardLimit: hard, clogPolicy: clogPolicy)
        }
    }

    public let options: Options
    /// The server stage: one replica per shared thread (`<name>-<i>`).
    public let stage: IOStage
    private let listener: Listener
    private let runtime: Runtime
    private let server: GnutellaServer

    /// Adds the I/O stage `name` over `server` to `runtime` and listens.
    /// Throws what ``Runtime/addIOStage(_:replicas:options:makeHandler:)``
    /// and ``Runtime/listen(host:port:readStage:acceptStage:options:)`` throw.
    public init(
        runtime: Runtime, name: String, server: GnutellaServer, options: Options = Options(),
        stageOptions: StageOptions = StageOptions()
    ) throws {
        self.runtime = runtime
        self.server = server
        self.options = options
        let stageBox = StageBox()
        stage = try runtime.addIOStage(name, replicas: .perThread, options: stageOptions) { _ in
            ServerIOHandler(server: server, stage: stageBox)
        }
        stageBox.set(stage)
        var lo = ListenerOptions(maxConnections: options.maxConnections, connection: options.connection)
        lo.acceptMode = .reusePort
        do {
            listener = try runtime.listen(
                host: options.host.description, port: options.port, readStage: nil, acceptStage: stage, options: lo)
        } catch {
            for i in 0..<runtime.cpuThreads { try? runtime.destroyStage(named: "\(name)-\(i)", mode: .handBack) }
            throw error
        }
    }

    /// The port listened on.
    public var port: UInt16 { listener.port }

    /// Connections accepted and open now (dialled ones not included).
    public var acceptedOpen: Int { listener.connections }

    /// Stops accepting. Open connections stay until the node closes them
    /// (``GnutellaNode/stop()``) or the runtime shuts down.
    public func shutdown() { listener.close() }

    // MARK: PeerConnector

    /// Dials `address`; the outcome reaches the server from the I/O stage.
    public func connect(to address: PeerAddress) {
        do {
            try runtime.connect(
                host: address.host.description, port: address.port, stage: stage, tag: address.tag,
                timeout: options.connectTimeout, options: options.connection)
        } catch {
            // Refused at the call (the runtime is stopping): no event follows.
            server.connectFailed(address)
        }
    }
}

extension PeerAddress {
    /// The address packed in a connect's tag (host in the high 32 bits).
    var tag: UInt64 { UInt64(host.value) << 16 | UInt64(port) }

    init(tag: UInt64) {
        self.init(host: IPv4Address(UInt32(truncatingIfNeeded: tag >> 16)), port: UInt16(truncatingIfNeeded: tag))
    }
}

/// The stage, known only once the replicas (and their handlers) exist.
private final class StageBox: Sendable {
    private let stage = Lock<IOStage?>(nil)
    func set(_ s: IOStage) { stage.withLock { $0 = s } }
    var value: IOStage? { stage.withLock { $0 } }
}

/// GnuServer over sockets: one per shared thread. Turns the socket layer's
/// events into ``GnutellaServer`` reports.
///
/// Thread rules: the replica's thread calls it (accepted connections: the
/// replica of thread 0).
private struct ServerIOHandler: IOHandler {
    let server: GnutellaServer
    let stage: StageBox

    func handle(_ batch: inout IOEventBatch) throws {
        batch.forEach { e in
            switch e.kind {
            case .packet:
                server.received(PeerID(e.connection!.id), e.bytes)
            case .accepted:
                let c = e.connection!
                let remote = c.peer.flatMap { PeerAddress($0) } ?? PeerAddress(host: IPv4Address(0), port: 0)
                server.opened(SocketLink(c, remote: remote), outbound: false)
                do {
                    guard let s = stage.value else { throw SedaError.closed }
                    try c.sendEvents(to: s)
                    c.resumeReading()
                } catch {
                    // Closed already: no event of it will reach a replica.
                    c.close()
                    server.closed(PeerID(c.id), reason: .error)
                }
            case .connected:
                let c = e.connection!
                server.opened(SocketLink(c, remote: PeerAddress(tag: e.tag)), outbound: true)
            case .connectFailed:
                server.connectFailed(PeerAddress(tag: e.tag))
            case .readEOF:
                server.readEOF(PeerID(e.connection!.id))
            case .closed:
                server.closed(PeerID(e.connection!.id), reason: Self.reason(e.errorCode))
            case .clogged:
                server.clogged(PeerID(e.connection!.id))
            case .writable, .unwritable, .writeDone:
                break
            }
        }
    }

    /// Why the socket layer closed a connection, for a close the server
    /// did not start.
    static func reason(_ code: Int32) -> CloseReason {
        switch -code {
        case 0, EPIPE: .local  // the application, or the runtime stopping
        case ENOBUFS: .clogged
        case ECONNRESET: .peerClosed
        default: .error
        }
    }
}

/// One Seda `Connection` as the Gnutella stages see it.
///
/// Thread rules: any thread (the socket layer posts other threads' calls
/// to the owner thread, in order).
final class SocketLink: PeerLink {
    let handle: ConnectionHandle
    let peer: PeerID
    let remote: PeerAddress

    init(_ connection: Connection, remote: PeerAddress) {
        handle = connection.retained()
        peer = PeerID(connection.id)
        self.remote = remote
    }

    func send(_ descriptor: Descriptor) -> SendOutcome {
        do throws(SedaError) {
            try handle.connection.write(buffer: descriptor.wireBytes, retaining: descriptor)
            return .queued
        } catch {
            return Self.outcome(error)
        }
    }

    func send(bytes: [UInt8]) -> SendOutcome {
        do throws(SedaError) {
            try handle.connection.write(bytes)
            return .queued
        } catch {
            return Self.outcome(error)
        }
    }

    func close(flush: Bool) {
        if flush { handle.connection.closeAfterFlush() } else { handle.connection.close() }
    }

    private static func outcome(_ e: SedaError) -> SendOutcome {
        e == .system(errno: ENOBUFS) ? .clogged : .closed
    }
}
