import Glibc
import Seda
import Synchronization

/// TCP for the Gnutella stages over one poll(2) thread: the interim
/// transport until Seda's socket layer (docs/design/io.md §3) has its Swift
/// API; then `SocketTransport` over `Connection` replaces it behind the same
/// seam (``PeerLink``, ``PeerConnector``, ``LinkEvent``s into the server).
///
/// What the stages rely on, kept from the socket layer's contract:
/// - a connection's reports reach the server stage in order, `.closed`
///   last, as control events; when the server's queue is full the I/O
///   thread waits (backpressure: nothing is dropped);
/// - ``PeerLink/send(_:)`` from any thread writes at once when nothing is
///   queued, else queues the descriptor itself (no copy) until the socket
///   takes it; past ``Options/hardLimit`` queued bytes the connection is
///   closed (`.closed(.clogged)`) or the write refused and `.clogged`
///   reported, as ``Options/clogPolicy`` says (the seed's socket queue
///   thresholding);
/// - non-blocking connects report `.opened(outbound: true)` or
///   `.connectFailed`.
/// It binds 127.0.0.1 only by default and sets `MSG_NOSIGNAL` on every send.
/// poll(2) rather than epoll, because the Glibc module does not export
/// epoll and this transport is not worth a C shim of its own: each turn
/// scans every connection (fine for the experiments' thousand; the socket
/// layer is the scalable path).
///
/// Thread rules: any thread may call every method. The I/O thread accepts,
/// reads and flushes; each connection's socket is touched under that
/// connection's lock. A writer that needs the I/O thread's help (its
/// socket is full) wakes it through a pipe.
public final class PollTransport: PeerConnector, @unchecked Sendable {
    // @unchecked: the mutable state is behind `links` and each link's lock;
    // `thread` is set once in init and joined once in shutdown.
    public struct Options: Sendable {
        /// Bytes a connection may queue for a peer that does not read; nil: no limit.
        public var hardLimit: Int? = 1 << 20
        public var clogPolicy: InProcessNetwork.ClogPolicy = .close
        /// Connections accepted at most; later ones are closed at once.
        public var maxConnections = 10_000
        /// The address to listen on (127.0.0.1 unless told otherwise).
        public var host: IPv4Address = .loopback
        /// SO_SNDBUF for every connection (nil: the kernel's autotuning, up
        /// to several MB a connection, which hides a clogged peer for a while).
        public var sendBuffer: Int32? = nil

        public init(
            hardLimit: Int? = 1 << 20, clogPolicy: InProcessNetwork.ClogPolicy = .close,
            maxConnections: Int = 10_000, host: IPv4Address = .loopback, sendBuffer: Int32? = nil
        ) {
            self.hardLimit = hardLimit
            self.clogPolicy = clogPolicy
            self.maxConnections = maxConnections
            self.host = host
            self.sendBuffer = sendBuffer
        }
    }

    public let options: Options
    /// The port listened on.
    public let port: UInt16
    private let server: Sink<LinkEvent>
    private let listenFD: Int32
    private let wakeRead: Int32, wakeWrite: Int32
    private let links = Lock<[UInt64: PollLink]>([:])
    private let nextID = Atomic<UInt64>(16)
    private let stopping = Atomic<Bool>(false)
    private var thread = pthread_t()

    /// Listens on `options.host:port` (0 picks one) and starts the I/O thread.
    public init(port: UInt16, server: Sink<LinkEvent>, options: Options = Options()) throws(SedaError) {
        self.options = options
        self.server = server
        let lfd = socket(
            AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard lfd >= 0 else { throw .system(errno: errno) }
        var one: Int32 = 1
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = PollTransport.sockaddr(PeerAddress(host: options.host, port: port))
        let bound = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                bind(lfd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(lfd, 4096) == 0 else {
            let e = errno
            Glibc.close(lfd)
            throw .system(errno: e)
        }
        var got = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &got) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { getsockname(lfd, $0, &len) }
        }
        self.port = UInt16(bigEndian: got.sin_port)
        listenFD = lfd
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            let e = errno
            Glibc.close(lfd)
            throw .system(errno: e)
        }
        for fd in fds { PollTransport.nonBlocking(fd) }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        let ctx = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { ctx in
                let me = Unmanaged<PollTransport>.fromOpaque(ctx!).takeRetainedValue()
                me.loop()
                return nil
            }, ctx)
        guard rc == 0 else {
            Unmanaged<PollTransport>.fromOpaque(ctx).release()
            throw .system(errno: rc)
        }
    }

    deinit {
        Glibc.close(listenFD)
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Connections open now.
    public var connectionCount: Int { links.withLock { $0.count } }

    /// Stops the I/O thread and closes every connection (each reports
    /// `.closed(.local)` if the server still takes events). Blocks.
    public func shutdown() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        wake()
        pthread_join(thread, nil)
        for l in links.withLock({ Array($0.values) }) { l.close(flush: false) }
    }

    // MARK: PeerConnector

    public func connect(to address: PeerAddress) {
        let fd = socket(
            AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            report(LinkEvent(link: nil, kind: .connectFailed(address)))
            return
        }
        configure(fd)
        var a = PollTransport.sockaddr(address)
        let r = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard r == 0 || errno == EINPROGRESS else {
            Glibc.close(fd)
            report(LinkEvent(link: nil, kind: .connectFailed(address)))
            return
        }
        let link = PollLink(
            transport: self, fd: fd, id: nextID.wrappingAdd(1, ordering: .relaxed).oldValue,
            remote: address, connecting: true)
        links.withLock { $0[link.id] = link }
        wake()
    }

    // MARK: Inside

    static func sockaddr(_ a: PeerAddress) -> sockaddr_in {
        var s = sockaddr_in()
        s.sin_family = sa_family_t(AF_INET)
        s.sin_port = a.port.bigEndian
        s.sin_addr.s_addr = a.host.value.bigEndian
        return s
    }

    /// TCP_NODELAY, and the send buffer if one is set.
    func configure(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if var size = options.sendBuffer {
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// O_NONBLOCK and FD_CLOEXEC (accept4 and pipe2 are not exported to Swift).
    static func nonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    /// Makes the I/O thread look at its connections again.
    func wake() {
        var b: UInt8 = 1
        _ = write(wakeWrite, &b, 1)
    }

    func forget(_ link: PollLink) {
        _ = links.withLock { $0.removeValue(forKey: link.id) }
    }

    /// Hands a report to the server stage, waiting while its queue is full
    /// (backpressure), giving up if it is closed or the transport stops.
    func report(_ e: LinkEvent) {
        while true {
            do throws(SedaError) {
                try server.enqueueControl(e)
                return
            } catch {
                if error != .full || stopping.load(ordering: .relaxed) { return }
                usleep(200)
            }
        }
    }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var fds: [pollfd] = []
        var polled: [PollLink] = []
        while !stopping.load(ordering: .relaxed) {
            fds.removeAll(keepingCapacity: true)
            polled.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            for link in links.withLock({ Array($0.values) }) {
                let (fd, events) = link.interest
                if fd >= 0 && events != 0 {
                    fds.append(pollfd(fd: fd, events: events, revents: 0))
                    polled.append(link)
                }
            }
            let n = poll(&fds, nfds_t(fds.count), 200)
            if n < 0 && errno != EINTR { break }
            if n <= 0 { continue }
            if fds[1].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 256)
                while read(wakeRead, &drain, drain.count) > 0 {}
            }
            if fds[0].revents != 0 { acceptAll() }
            for (i, link) in polled.enumerated() {
                let ev = Int32(fds[i + 2].revents)
                if ev == 0 { continue }
                if ev & Int32(POLLOUT) != 0 { link.writable() }
                if ev & (Int32(POLLIN) | Int32(POLLERR) | Int32(POLLHUP)) != 0 {
                    buffer.withUnsafeMutableBytes { link.readable(into: $0) }
                }
            }
        }
    }

    private func acceptAll() {
        for _ in 0..<64 {
            var a = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let fd = withUnsafeMutablePointer(to: &a) {
                $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                    accept(listenFD, $0, &len)
                }
            }
            guard fd >= 0 else { return }
            PollTransport.nonBlocking(fd)
            if connectionCount >= options.maxConnections {
                Glibc.close(fd)
                continue
            }
            configure(fd)
            let remote = PeerAddress(
                host: IPv4Address(UInt32(bigEndian: a.sin_addr.s_addr)),
                port: UInt16(bigEndian: a.sin_port))
            let link = PollLink(
                transport: self, fd: fd, id: nextID.wrappingAdd(1, ordering: .relaxed).oldValue,
                remote: remote, connecting: false)
            report(LinkEvent(link: link, kind: .opened(outbound: false)))
            links.withLock { $0[link.id] = link }
        }
    }
}

/// One TCP connection of a ``PollTransport``.
final class PollLink: PeerLink, @unchecked Sendable {
    // @unchecked: every mutable field is behind `state`.
    private struct State {
        var fd: Int32
        var connecting: Bool
        var closed = false
        var closeAfterFlush = false
        var reading = true
        /// Queued output: descriptors (retained, no copy) or copied bytes,
        /// with how much of the first is already sent.
        var pending: [Chunk] = []
        var sentOfFirst = 0
        var pendingBytes = 0
        var wantOut = false
    }

    enum Chunk {
        case descriptor(Descriptor)
        case bytes([UInt8])

        func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
            switch self {
            case .descriptor(let d): body(d.wireBytes)
            case .bytes(let b): b.withUnsafeBytes(body)
            }
        }

        var count: Int {
            switch self {
            case .descriptor(let d): d.wireBytes.count
            case .bytes(let b): b.count
            }
        }
    }

    unowned let transport: PollTransport
    let id: UInt64
    let peer: PeerID
    let remote: PeerAddress
    private let state: Lock<State>

    init(transport: PollTransport, fd: Int32, id: UInt64, remote: PeerAddress, connecting: Bool) {
        self.transport = transport
        self.id = id
        peer = PeerID(id)
        self.remote = remote
        state = Lock(State(fd: fd, connecting: connecting))
    }

    /// The socket and what the I/O thread should wait for on it.
    var interest: (Int32, Int16) {
        state.withLock { s in
            if s.closed { return (-1, 0) }
            if s.connecting { return (s.fd, Int16(POLLOUT)) }
            return (s.fd, (s.reading ? Int16(POLLIN) : 0) | (s.wantOut || s.closeAfterFlush ? Int16(POLLOUT) : 0))
        }
    }

    func send(_ descriptor: Descriptor) -> SendOutcome { enqueue(.descriptor(descriptor)) }
    func send(bytes: [UInt8]) -> SendOutcome { enqueue(.bytes(bytes)) }

    private func enqueue(_ chunk: Chunk) -> SendOutcome {
        var clogged = false
        let outcome: SendOutcome = state.withLock { s in
            guard !s.closed, !s.closeAfterFlush, !s.connecting else { return .closed }
            var offset = 0
            if s.pending.isEmpty {
                // Nothing queued: write now, keep only the rest.
                offset = chunk.withBytes { b in PollLink.sendSome(s.fd, b) }
                if offset < 0 {
                    closeLocked(&s, reason: .error)
                    return .closed
                }
                if offset == chunk.count { return .queued }
            }
            let rest = chunk.count - offset
            if let limit = transport.options.hardLimit, s.pendingBytes + rest > limit {
                switch transport.options.clogPolicy {
                case .close:
                    closeLocked(&s, reason: .clogged)
                    return .closed
                case .notify:
                    if offset == 0 {
                        clogged = true
                        return .clogged
                    }
                // Part of it went out already: the rest must follow.
                }
            }
            if s.pending.isEmpty { s.sentOfFirst = offset }
            s.pending.append(chunk)
            s.pendingBytes += rest
            if !s.wantOut {
                s.wantOut = true
                transport.wake()
            }
            return .queued
        }
        if clogged { transport.report(LinkEvent(link: self, kind: .clogged)) }
        return outcome
    }

    /// Bytes sent (possibly 0), or -1 on a fatal error.
    private static func sendSome(_ fd: Int32, _ b: UnsafeRawBufferPointer) -> Int {
        var at = 0
        while at < b.count {
            let k = Glibc.send(fd, b.baseAddress! + at, b.count - at, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if k < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN ? at : -1
            }
            at += k
        }
        return at
    }

    func close(flush: Bool) {
        state.withLock { s in
            guard !s.closed else { return }
            if flush && !s.pending.isEmpty {
                s.closeAfterFlush = true
                s.reading = false
            } else {
                closeLocked(&s, reason: .local)
            }
        }
    }

    /// Closes the socket and reports `.closed` (the link's last report).
    private func closeLocked(_ s: inout State, reason: CloseReason) {
        guard !s.closed else { return }
        s.closed = true
        Glibc.close(s.fd)
        s.fd = -1
        s.pending.removeAll()
        s.pendingBytes = 0
        transport.forget(self)
        transport.report(LinkEvent(link: self, kind: .closed(reason)))
    }

    /// The I/O thread: the socket can take more (or a connect finished).
    func writable() {
        state.withLock { s in
            guard !s.closed else { return }
            if s.connecting {
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len)
                if err != 0 {
                    s.closed = true
                    Glibc.close(s.fd)
                    s.fd = -1
                    transport.forget(self)
                    transport.report(LinkEvent(link: nil, kind: .connectFailed(remote)))
                    return
                }
                s.connecting = false
                transport.report(LinkEvent(link: self, kind: .opened(outbound: true)))
                return
            }
            while let first = s.pending.first {
                let done = first.withBytes { b in
                    PollLink.sendSome(s.fd, UnsafeRawBufferPointer(rebasing: b[s.sentOfFirst...]))
                }
                if done < 0 {
                    closeLocked(&s, reason: .error)
                    return
                }
                s.sentOfFirst += done
                s.pendingBytes -= done
                if s.sentOfFirst < first.count { return }  // the socket is full again
                s.pending.removeFirst()
                s.sentOfFirst = 0
            }
            if s.closeAfterFlush {
                closeLocked(&s, reason: .local)
                return
            }
            s.wantOut = false
        }
    }

    /// The I/O thread: bytes (or end of stream) to read. One read per call,
    /// so that one busy peer does not starve the others.
    func readable(into buffer: UnsafeMutableRawBufferPointer) {
        state.withLock { s in
            guard !s.closed, !s.connecting, s.reading else { return }
            let k = read(s.fd, buffer.baseAddress!, buffer.count)
            if k > 0 {
                transport.report(
                    LinkEvent(link: self, kind: .data(Array(UnsafeRawBufferPointer(rebasing: buffer[0..<k])))))
            } else if k == 0 {
                s.reading = false
                transport.report(LinkEvent(link: self, kind: .readEOF))
            } else if errno != EAGAIN && errno != EINTR {
                closeLocked(&s, reason: .error)
            }
        }
    }
}
