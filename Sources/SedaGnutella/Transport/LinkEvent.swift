/// A transport's report about one connection, for transports whose events
/// are objects (``InProcessNetwork``): the server stage's event type. Seda's
/// socket layer reports through its own `IOEvent`s, which the server's I/O
/// handler hands to the same ``GnutellaServer`` methods.
public final class LinkEvent: Sendable {
    public enum Kind: Sendable {
        /// Connected: `outbound` when we dialled, else accepted.
        case opened(outbound: Bool)
        /// Bytes received, in order.
        case data([UInt8])
        /// The peer will send nothing more.
        case readEOF
        /// The connection is gone; the last event of a link.
        case closed(CloseReason)
        /// The outgoing queue passed its hard limit (notify policy).
        case clogged
        /// A connect to this address failed (no link).
        case connectFailed(PeerAddress)
    }

    public let link: (any PeerLink)?
    public let kind: Kind

    public init(link: (any PeerLink)?, kind: Kind) {
        self.link = link
        self.kind = kind
    }
}
