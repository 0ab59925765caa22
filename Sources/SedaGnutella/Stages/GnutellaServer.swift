import Seda

/// The server: Sandstorm's GnuServer. Owns every connection's session
/// (the handshake, then the framer), parses what arrives, checks it and
/// hands each descriptor to the router; closes a connection whose input is
/// bad, counting why, without touching any other.
///
/// Transport-neutral: a transport reports through ``opened(_:outbound:)``,
/// then, by link or by its ``PeerID``, ``received(_:_:)`` (bytes valid
/// during the call only: they are copied once, into the descriptors),
/// ``readEOF(_:)``, ``closed(_:reason:)`` and ``clogged(_:)``; and
/// ``connectFailed(_:)``. ``ServerHandler`` is the stage that calls them for
/// ``LinkEvent``s (``InProcessNetwork``); ``SocketTransport``'s I/O handler
/// calls them on the worker thread that read the bytes.
///
/// Bad input and what it costs the peer (the connection is closed at once,
/// queued output discarded, and the close counted under its
/// ``CloseReason``; other connections are not affected):
/// - garbage instead of the handshake: `badHandshake`, at the first wrong byte;
/// - an unknown payload type: `unknownPayloadType`;
/// - a payload length above ``GnutellaServer/Settings/maxPayload``: `payloadTooLong`
///   (nothing is allocated for it);
/// - the stream ending inside a descriptor or the handshake: `truncated`;
/// - no complete handshake within ``Settings/handshakeTimeout``:
///   `handshakeTimeout` (a peer that connects and says nothing would hold
///   its connection for ever; ``sweep(now:)`` finds it).
/// A payload that does not parse is dropped and counted
/// (``DropReason/malformed``) but does not close the connection (the stream
/// is still in step); TTL + hops above the limit is the router's to clamp.
///
/// Thread rules: any thread may call every method; calls for one
/// connection must come in the transport's order (one stage thread, or the
/// connection's owner loop).
public final class GnutellaServer: Sendable {
    public struct Settings: Sendable, Equatable {
        /// The largest payload accepted (the annotated specification
        /// suggests servents drop descriptors over a few KB; query hits
        /// with many results are the longest).
        public var maxPayload: Int = 64 * 1024
        /// The most handshaken connections; later ones are closed.
        public var maxConnections: Int = 10_000
        /// How long a connection may take to complete its handshake.
        public var handshakeTimeout: Duration = .seconds(10)

        public init(
            maxPayload: Int = 64 * 1024, maxConnections: Int = 10_000,
            handshakeTimeout: Duration = .seconds(10)
        ) {
            self.maxPayload = maxPayload
            self.maxConnections = maxConnections
            self.handshakeTimeout = handshakeTimeout
        }
    }

    /// One connection's protocol state.
    private final class Session: @unchecked Sendable {
        // @unchecked: `handshake` and `framer` are touched only by calls for
        // this connection, which the transport serialises (see the thread
        // rules); `closing` and `handshaken` only under the sessions lock
        // (closeAll and sweep come from any thread).
        let link: any PeerLink
        let openedAt: Int64
        var handshake: Handshake
        var framer: DescriptorFramer
        var closing: CloseReason?
        var handshaken = false

        init(link: any PeerLink, role: Handshake.Role, maxPayload: Int, openedAt: Int64) {
            self.link = link
            self.openedAt = openedAt
            handshake = Handshake(role: role)
            framer = DescriptorFramer(maxPayload: maxPayload)
        }
    }

    public let settings: Settings
    public let statistics: GnutellaStatistics
    public let neighbours: Neighbours
    private let clock: SedaClock
    private let sessions = Lock<[PeerID: Session]>([:])

    /// The session of a connection that is not closing.
    private func live(_ peer: PeerID) -> Session? {
        sessions.withLock { m in m[peer].flatMap { $0.closing == nil ? $0 : nil } }
    }
    private let router: Sink<GnutellaEvent>
    private let routerClasses: Bool
    private let catcher: Sink<CatcherEvent>?

    /// - Parameters:
    ///   - router: where descriptors go.
    ///   - routerClasses: the router has two priority classes: queries go
    ///     to class 1, everything else to class 0 (served first).
    ///   - catcher: told of outbound connects and their failures.
    public init(
        settings: Settings, statistics: GnutellaStatistics, neighbours: Neighbours, clock: SedaClock,
        router: Sink<GnutellaEvent>, routerClasses: Bool = false, catcher: Sink<CatcherEvent>?
    ) {
        self.settings = settings
        self.statistics = statistics
        self.neighbours = neighbours
        self.clock = clock
        self.router = router
        self.routerClasses = routerClasses
        self.catcher = catcher
    }

    /// Connections with a session (handshaking or handshaken).
    public var sessionCount: Int { sessions.withLock { $0.count } }

    // MARK: Transport reports

    /// A connection opened: `outbound` when we dialled (we send CONNECT
    /// first), else accepted (we wait for CONNECT).
    public func opened(_ link: any PeerLink, outbound: Bool) {
        let s = Session(
            link: link, role: outbound ? .connecting : .accepting, maxPayload: settings.maxPayload,
            openedAt: clock.now)
        sessions.withLock { $0[link.peer] = s }
        if outbound {
            statistics.connectedOut()
            try? catcher?.enqueueControl(CatcherEvent(.connected(link.remote)))
            _ = link.send(bytes: s.handshake.reply)
        } else {
            statistics.accepted()
        }
    }

    /// Bytes arrived on `link`, valid only during the call.
    public func received(_ link: any PeerLink, _ bytes: UnsafeRawBufferPointer) { received(link.peer, bytes) }

    /// Bytes arrived on the connection `peer` (reported opened before),
    /// valid only during the call.
    public func received(_ peer: PeerID, _ bytes: UnsafeRawBufferPointer) {
        guard let s = live(peer) else { return }
        let link = s.link
        statistics.bytesIn(bytes.count)
        var rest = bytes
        if !s.handshake.isComplete {
            switch s.handshake.feed(bytes) {
            case .needMore:
                return
            case .failed:
                close(s, .badHandshake)
                return
            case .done(let consumed):
                if s.handshake.role == .accepting { _ = link.send(bytes: s.handshake.reply) }
                guard neighbours.count < settings.maxConnections else {
                    close(s, .local)
                    return
                }
                neighbours.add(link)
                sessions.withLock { _ in s.handshaken = true }
                statistics.handshakeDone()
                rest = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
            }
        }
        if rest.isEmpty { return }
        do throws(FramingError) {
            try s.framer.feed(rest, origin: link.peer, now: clock.now) { d in self.deliver(d) }
        } catch {
            switch error {
            case .unknownPayloadType: close(s, .unknownPayloadType)
            case .payloadTooLong: close(s, .payloadTooLong)
            }
        }
    }

    /// The peer sent end of stream: fine between descriptors, truncation
    /// inside one (or inside the handshake).
    public func readEOF(_ link: any PeerLink) { readEOF(link.peer) }

    /// ``readEOF(_:)-(PeerLink)`` by connection ID.
    public func readEOF(_ peer: PeerID) {
        guard let s = live(peer) else { return }
        let cut = s.framer.isMidDescriptor || !s.handshake.isComplete
        close(s, cut ? .truncated : .peerClosed, flush: !cut)
    }

    /// The connection is gone (the transport's last report for it).
    /// `reason` is the transport's; a close this server started keeps its own.
    public func closed(_ link: any PeerLink, reason: CloseReason) { closed(link.peer, reason: reason) }

    /// ``closed(_:reason:)-(PeerLink,_)`` by connection ID.
    public func closed(_ peer: PeerID, reason: CloseReason) {
        guard let (s, closing) = sessions.withLock({ m in m.removeValue(forKey: peer).map { ($0, $0.closing) } })
        else { return }
        if closing == nil {
            // The transport closed it (the peer reset it, or it clogged):
            // a stream cut inside a descriptor is truncated whatever the cause.
            let r: CloseReason =
                reason == .peerClosed && (s.framer.isMidDescriptor || !s.handshake.isComplete)
                ? .truncated : reason
            statistics.closed(r)
        }
        if neighbours.remove(peer) { statistics.handshakenClosed() }
    }

    /// The connection's outgoing queue passed its hard limit: the peer is
    /// not reading. Close it (the seed's socket queue thresholding).
    public func clogged(_ link: any PeerLink) { clogged(link.peer) }

    /// ``clogged(_:)-(PeerLink)`` by connection ID.
    public func clogged(_ peer: PeerID) {
        guard let s = live(peer) else { return }
        close(s, .clogged)
    }

    /// A connect we started failed.
    public func connectFailed(_ address: PeerAddress) {
        statistics.connectFailed()
        try? catcher?.enqueueControl(CatcherEvent(.connectFailed(address)))
    }

    /// Closes the connections that have not completed their handshake
    /// within the timeout. Any thread (the node's ticker calls it); returns
    /// how many it closed.
    @discardableResult
    public func sweep(now: Int64) -> Int {
        let limit = nanos(settings.handshakeTimeout)
        let late = sessions.withLock { m in
            m.values.filter { !$0.handshaken && $0.closing == nil && now - $0.openedAt >= limit }
        }
        for s in late { close(s, .handshakeTimeout) }
        return late.count
    }

    /// Closes every connection (shutdown).
    public func closeAll() {
        for s in sessions.withLock({ Array($0.values) }) {
            close(s, .local, flush: true)
        }
    }

    // MARK: Inside

    /// Closes once: a second close of the same session does nothing.
    private func close(_ s: Session, _ reason: CloseReason, flush: Bool = false) {
        let first = sessions.withLock { _ in
            if s.closing != nil { return false }
            s.closing = reason
            return true
        }
        guard first else { return }
        statistics.closed(reason)
        if neighbours.remove(s.link.peer) { statistics.handshakenClosed() }
        s.link.close(flush: flush)
    }

    private func deliver(_ d: Descriptor) {
        statistics.received(d.type)
        if Payload.validate(type: d.type, bytes: d.payload) != nil {
            statistics.dropped(.malformed)
            return
        }
        do throws(SedaError) {
            if routerClasses {
                try router.enqueue(d, priorityClass: d.type == .query ? 1 : 0)
            } else {
                try router.enqueue(d)
            }
        } catch {
            switch error {
            case .rejected: statistics.dropped(.routerRefused)
            case .full: statistics.dropped(.routerFull)
            default: break  // the router is gone: shutting down
            }
        }
    }
}

/// The server stage for transports that report with ``LinkEvent``s.
public struct ServerHandler: EventHandler {
    public let server: GnutellaServer

    public init(server: GnutellaServer) { self.server = server }

    public func handle(_ batch: inout EventBatch<LinkEvent>) throws {
        batch.forEach { e in
            switch e.kind {
            case .opened(let outbound): server.opened(e.link!, outbound: outbound)
            case .data(let bytes): bytes.withUnsafeBytes { server.received(e.link!, $0) }
            case .readEOF: server.readEOF(e.link!)
            case .closed(let reason): server.closed(e.link!, reason: reason)
            case .clogged: server.clogged(e.link!)
            case .connectFailed(let address): server.connectFailed(address)
            }
        }
    }
}
