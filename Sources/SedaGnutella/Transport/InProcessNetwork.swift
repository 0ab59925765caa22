import Seda
import Synchronization

/// An in-memory network that plays the kernel for Gnutella nodes in one
/// process: nodes attach at an address, dial each other through a
/// ``PeerConnector``, and exchange bytes through pipes with the socket
/// layer's semantics: ordered bytes, end of stream, close, and a per
/// connection outgoing limit (a peer that stops reading makes its sender's
/// queue grow until the hard limit closes the connection or reports it
/// clogged). Tests also attach raw ``Probe``s: byte-level peers that send
/// whatever they like (garbage included) and record what they receive.
///
/// The node side receives ``LinkEvent``s on its server stage's sink, as
/// control events (a transport never loses its reports to admission
/// control); when that queue is full they wait in the pipe, in order, and
/// are retried by the next operation on the pipe or by ``pump()``.
///
/// Thread rules: any thread; one lock per pipe orders both directions.
public final class InProcessNetwork: Sendable {
    /// What happens when a pipe's undelivered bytes pass ``Options/hardLimit``.
    public enum ClogPolicy: Sendable {
        /// Close the connection (its owner gets `.closed(.clogged)`).
        case close
        /// Refuse the write and tell the owner (`.clogged`).
        case notify
    }

    public struct Options: Sendable {
        /// Bytes a connection may hold for a peer that does not read;
        /// `nil`: no limit (memory grows while the peer does not read).
        public var hardLimit: Int? = 1 << 20
        public var clogPolicy: ClogPolicy = .close

        public init(hardLimit: Int? = 1 << 20, clogPolicy: ClogPolicy = .close) {
            self.hardLimit = hardLimit
            self.clogPolicy = clogPolicy
        }
    }

    public let options: Options
    private let nextID = Atomic<UInt64>(1)
    private let nodes = Lock<[PeerAddress: Sink<LinkEvent>]>([:])
    private let pipes = Lock<[ObjectIdentifier: Pipe]>([:])
    private let nextEphemeral = Atomic<UInt32>(40_000)

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Attaches a node's server stage at `address`; returns the connector
    /// it dials with.
    public func attach(_ address: PeerAddress, server: Sink<LinkEvent>) -> any PeerConnector {
        nodes.withLock { $0[address] = server }
        return Connector(network: self, from: address, server: server)
    }

    /// Connects a raw probe to the node at `address` (the node sees an
    /// inbound connection). Throws if nothing is attached there.
    public func probe(connectingTo address: PeerAddress) throws(SedaError) -> Probe {
        guard let sink = nodes.withLock({ $0[address] }) else { throw .invalidArgument }
        let probe = Probe()
        let pipe = makePipe(a: .probe(probe), aAddress: ephemeral(), b: .node(sink), bAddress: address)
        probe.link = pipe.end(0)
        pipe.open()
        return probe
    }

    /// Retries every pipe's undelivered events (for queues that were full).
    public func pump() {
        for p in pipes.withLock({ Array($0.values) }) { p.flushBoth() }
    }

    /// Bytes waiting in pipes for peers that do not read: the memory a
    /// clogged peer costs.
    public var bytesHeld: Int { pipes.withLock { Array($0.values) }.reduce(0) { $0 + $1.heldBytes } }

    fileprivate func connect(from: PeerAddress, server: Sink<LinkEvent>, to address: PeerAddress) {
        guard let target = nodes.withLock({ $0[address] }) else {
            try? server.enqueueControl(LinkEvent(link: nil, kind: .connectFailed(address)))
            return
        }
        makePipe(a: .node(server), aAddress: ephemeral(from.host), b: .node(target), bAddress: address).open()
    }

    private func ephemeral(_ host: IPv4Address = .loopback) -> PeerAddress {
        PeerAddress(
            host: host, port: UInt16(truncatingIfNeeded: nextEphemeral.wrappingAdd(1, ordering: .relaxed).oldValue))
    }

    /// `a` (at `aAddress`) dialled `b` (at `bAddress`).
    private func makePipe(a: Endpoint, aAddress: PeerAddress, b: Endpoint, bAddress: PeerAddress) -> Pipe {
        let ids = (
            PeerID(nextID.wrappingAdd(1, ordering: .relaxed).oldValue),
            PeerID(nextID.wrappingAdd(1, ordering: .relaxed).oldValue)
        )
        let pipe = Pipe(network: self, endpoints: [a, b], ids: ids, remotes: [aAddress, bAddress])
        pipes.withLock { $0[ObjectIdentifier(pipe)] = pipe }
        return pipe
    }

    fileprivate func retire(_ pipe: Pipe) {
        _ = pipes.withLock { $0.removeValue(forKey: ObjectIdentifier(pipe)) }
        pipe.detach()
    }

    private struct Connector: PeerConnector {
        let network: InProcessNetwork
        let from: PeerAddress
        let server: Sink<LinkEvent>
        func connect(to address: PeerAddress) { network.connect(from: from, server: server, to: address) }
    }

    enum Endpoint: Sendable {
        case node(Sink<LinkEvent>)
        case probe(Probe)
    }

    /// One connection: two ends, one lock.
    final class Pipe: Sendable {
        private struct Side {
            var closed = false
            var reading = true
            var pending: [LinkEvent] = []
            var pendingBytes = 0
        }

        private struct State {
            var sides = [Side(), Side()]
            var links: [Link?] = [nil, nil]
        }

        let network: InProcessNetwork
        let endpoints: [Endpoint]
        private let state = Lock(State())

        init(network: InProcessNetwork, endpoints: [Endpoint], ids: (PeerID, PeerID), remotes: [PeerAddress]) {
            self.network = network
            self.endpoints = endpoints
            // End 0's link reports end 1's address as remote, and back.
            let l0 = Link(peer: ids.0, remote: remotes[1], side: 0)
            let l1 = Link(peer: ids.1, remote: remotes[0], side: 1)
            state.withLock { $0.links = [l0, l1] }
            l0.pipe = self
            l1.pipe = self
        }

        func end(_ side: Int) -> Link { state.withLock { $0.links[side]! } }

        /// Breaks the pipe ↔ link cycle once both ends are closed.
        func detach() { state.withLock { $0.links = [nil, nil] } }

        var heldBytes: Int { state.withLock { $0.sides[0].pendingBytes + $0.sides[1].pendingBytes } }

        func open() {
            state.withLock { s in
                queue(&s, to: 0, LinkEvent(link: s.links[0], kind: .opened(outbound: true)))
                queue(&s, to: 1, LinkEvent(link: s.links[1], kind: .opened(outbound: false)))
            }
        }

        func send(from side: Int, _ bytes: [UInt8]) -> SendOutcome {
            let retire: Bool
            let outcome: SendOutcome
            (outcome, retire) = state.withLock { s -> (SendOutcome, Bool) in
                let other = 1 - side
                guard !s.sides[side].closed, !s.sides[other].closed else { return (.closed, false) }
                if let limit = network.options.hardLimit, s.sides[other].pendingBytes + bytes.count > limit {
                    switch network.options.clogPolicy {
                    case .close:
                        return (.closed, close(&s, side: side, reason: .clogged, flush: false))
                    case .notify:
                        queue(&s, to: side, LinkEvent(link: s.links[side], kind: .clogged))
                        return (.clogged, false)
                    }
                }
                queue(&s, to: other, LinkEvent(link: s.links[other], kind: .data(bytes)))
                return (.queued, false)
            }
            if retire { network.retire(self) }
            return outcome
        }

        func close(from side: Int, reason: CloseReason, flush: Bool) {
            if state.withLock({ close(&$0, side: side, reason: reason, flush: flush) }) { network.retire(self) }
        }

        func setReading(_ side: Int, _ on: Bool) {
            state.withLock { s in
                s.sides[side].reading = on
                deliver(&s, side)
            }
        }

        func flushBoth() {
            state.withLock { s in
                deliver(&s, 0)
                deliver(&s, 1)
            }
        }

        /// Returns true when both ends are closed and everything delivered.
        private func close(_ s: inout State, side: Int, reason: CloseReason, flush: Bool) -> Bool {
            guard !s.sides[side].closed else { return false }
            s.sides[side].closed = true
            let other = 1 - side
            if !flush {
                // Our queued output to the other end is discarded.
                s.sides[other].pending.removeAll { if case .data = $0.kind { true } else { false } }
                s.sides[other].pendingBytes = 0
            }
            if !s.sides[other].closed {
                queue(&s, to: other, LinkEvent(link: s.links[other], kind: .readEOF))
            }
            queue(&s, to: side, LinkEvent(link: s.links[side], kind: .closed(reason)))
            return s.sides[other].closed && s.sides.allSatisfy { $0.pending.isEmpty }
        }

        private func queue(_ s: inout State, to side: Int, _ e: LinkEvent) {
            if case .data(let b) = e.kind { s.sides[side].pendingBytes += b.count }
            s.sides[side].pending.append(e)
            deliver(&s, side)
        }

        /// Hands pending events to the endpoint, in order, while it takes
        /// them. Data waits while the side is not reading; reports do not
        /// overtake it.
        private func deliver(_ s: inout State, _ side: Int) {
            while let e = s.sides[side].pending.first {
                let isData: Bool
                if case .data = e.kind { isData = true } else { isData = false }
                if isData && !s.sides[side].reading { return }
                switch endpoints[side] {
                case .node(let sink):
                    do throws(SedaError) {
                        try sink.enqueueControl(e)
                    } catch {
                        if error == .full { return }
                        // The node is gone: nothing will read this end any more.
                        s.sides[side].pending.removeAll()
                        s.sides[side].pendingBytes = 0
                        return
                    }
                case .probe(let p):
                    p.receive(e)
                }
                s.sides[side].pending.removeFirst()
                if case .data(let b) = e.kind { s.sides[side].pendingBytes -= b.count }
            }
        }
    }

    /// One end of a pipe.
    final class Link: PeerLink, @unchecked Sendable {
        // @unchecked: `pipe` is set once, in the pipe's initialiser, before
        // the link is published.
        let peer: PeerID
        let remote: PeerAddress
        let side: Int
        var pipe: Pipe!

        init(peer: PeerID, remote: PeerAddress, side: Int) {
            self.peer = peer
            self.remote = remote
            self.side = side
        }

        func send(_ descriptor: Descriptor) -> SendOutcome { pipe.send(from: side, descriptor.bytes) }
        func send(bytes: [UInt8]) -> SendOutcome { pipe.send(from: side, bytes) }
        func close(flush: Bool) { pipe.close(from: side, reason: .local, flush: flush) }
    }
}

/// A byte-level peer for tests: it sends what it is told (a correct
/// handshake or garbage) and records what it receives.
///
/// Thread rules: any thread.
public final class Probe: @unchecked Sendable {
    // @unchecked: `link` is set once before the probe is returned; the rest
    // is behind `state`.
    fileprivate var link: InProcessNetwork.Link!

    private struct State {
        var received: [UInt8] = []
        var eof = false
        var closed = false
    }

    private let state = Lock(State())

    fileprivate init() {}

    fileprivate func receive(_ e: LinkEvent) {
        state.withLock { s in
            switch e.kind {
            case .data(let b): s.received += b
            case .readEOF: s.eof = true
            case .closed: s.closed = true
            default: break
            }
        }
    }

    /// Sends bytes to the node.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> SendOutcome { link.send(bytes: bytes) }

    /// Sends a descriptor's wire bytes.
    @discardableResult
    public func send(_ d: Descriptor) -> SendOutcome { link.send(bytes: d.bytes) }

    /// Closes this end (the node reads end of stream).
    public func close() { link.close(flush: true) }

    /// Stops or resumes reading: while stopped, the node's writes pile up
    /// in the pipe (towards its hard limit).
    public func setReading(_ on: Bool) { link.pipe.setReading(link.side, on) }

    /// Everything received so far.
    public var received: [UInt8] { state.withLock { $0.received } }

    /// Whether the node closed its end.
    public var sawEOF: Bool { state.withLock { $0.eof } }

    /// The descriptors received after the `GNUTELLA OK` reply (the reply
    /// itself is checked: nil if the bytes do not start with it).
    public func descriptors(maxPayload: Int = 1 << 20) -> [Descriptor]? {
        let bytes = received
        let ok = GnutellaWire.connectReply
        guard bytes.count >= ok.count, Array(bytes[0..<ok.count]) == ok else { return nil }
        var framer = DescriptorFramer(maxPayload: maxPayload)
        var out: [Descriptor] = []
        do {
            try framer.feed(Array(bytes[ok.count...]), origin: link.peer, now: 0) { out.append($0) }
        } catch {
            return nil
        }
        return out
    }
}
