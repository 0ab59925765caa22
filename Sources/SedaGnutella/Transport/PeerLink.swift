import Seda

/// What a write did.
public enum SendOutcome: Sendable, Equatable {
    /// Queued; the bytes go out when the connection can take them.
    case queued
    /// The connection is closed (or closing): nothing was queued.
    case closed
    /// The connection's outgoing queue is past its hard limit (the peer
    /// stopped reading): nothing was queued.
    case clogged
}

/// One connection to a neighbour as the Gnutella stages see it: the seam
/// between them and a transport. Seda's socket layer provides one per
/// `Connection`; ``InProcessNetwork`` provides one per in-memory pipe.
///
/// Thread rules: every method may be called from any thread, at once; a
/// connection's writes go out in the order its `send` calls returned.
public protocol PeerLink: AnyObject, Sendable {
    /// This end's connection ID.
    var peer: PeerID { get }
    /// The other end's address.
    var remote: PeerAddress { get }
    /// Queues the descriptor's wire bytes without copying them: the link
    /// keeps `descriptor` alive until they are sent or the connection dies.
    func send(_ descriptor: Descriptor) -> SendOutcome
    /// Queues a copy of `bytes` (the handshake strings).
    func send(bytes: [UInt8]) -> SendOutcome
    /// Closes the connection: at once (queued output discarded), or after
    /// sending what is queued. The transport then reports it closed.
    func close(flush: Bool)
}

/// Dials out for the catcher. The outcome arrives at the node's server
/// (``GnutellaServer/opened(_:outbound:)`` or
/// ``GnutellaServer/connectFailed(_:)``), never through the call.
public protocol PeerConnector: Sendable {
    func connect(to address: PeerAddress)
}

/// The handshaken connections of a node: the router floods to them and
/// routes to them by ``PeerID``.
///
/// Thread rules: any thread. Reads take a lock for a few loads and return
/// an immutable array snapshot, so a flood iterates without holding it.
public final class Neighbours: Sendable {
    private struct State {
        var byID: [PeerID: any PeerLink] = [:]
        var all: [any PeerLink] = []
    }

    private let state = Lock(State())

    public init() {}

    /// Adds a handshaken link.
    func add(_ link: any PeerLink) {
        state.withLock { s in
            s.byID[link.peer] = link
            s.all.append(link)
        }
    }

    /// Removes a link; returns whether it was there.
    @discardableResult
    func remove(_ peer: PeerID) -> Bool {
        state.withLock { s in
            guard s.byID.removeValue(forKey: peer) != nil else { return false }
            s.all.removeAll { $0.peer == peer }
            return true
        }
    }

    /// The link to `peer`, if handshaken and open.
    public func link(_ peer: PeerID) -> (any PeerLink)? {
        state.withLock { $0.byID[peer] }
    }

    /// Every handshaken link, in the order they joined.
    public var all: [any PeerLink] { state.withLock { $0.all } }

    public var count: Int { state.withLock { $0.all.count } }

    /// The remote addresses, for the catcher (not to dial one twice).
    public var remoteAddresses: Set<PeerAddress> { Set(all.map(\.remote)) }
}
