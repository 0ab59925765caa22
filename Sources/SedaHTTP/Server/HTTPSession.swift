/// What the server's request path does with a connection next.
public enum HTTPConnectionAction: Sendable, Equatable {
    /// Read on.
    case read
    /// A request is with another stage (file read, `/bottleneck`, status):
    /// stop reading until ``HTTPRequestProcessor/completed(_:output:)``
    /// says otherwise. Responses stay in order; what arrives meanwhile is
    /// kept by the parser (the connection should pause reading to bound it).
    case waitForReply
    /// Close once the output is flushed (a refused request, `Connection:
    /// close`, HTTP/1.0 without keep-alive, the request limit, a timeout).
    case close
}

/// The HTTP state of one connection: its parser and the request (if any)
/// that another stage is working on. The connection keeps it (the socket
/// layer's per-connection user state).
///
/// Thread rules: the connection's owner thread only (the worker that reads
/// it and runs its ``HTTPRequestProcessor``); a stage working on a deferred
/// request does not touch it.
public final class HTTPSession: @unchecked Sendable {
    // @unchecked: confined to the connection's owner thread.
    /// The connection's request parser.
    public let parser: HTTPRequestParser
    /// The wiring's own object for this connection (its socket-layer
    /// connection), so a reply coming back from a stage finds where to write.
    @exclusivity(unchecked) public var context: AnyObject?
    /// The request another stage is working on; later requests wait behind it.
    @exclusivity(unchecked) public internal(set) var pending: HTTPDeferredRequest?

    /// A session whose parser enforces `limits` (use the site's:
    /// ``init(site:)``).
    public init(limits: HTTPLimits = HTTPLimits()) {
        parser = HTTPRequestParser(limits: limits)
    }

    /// A session under the site's limits: one per accepted connection.
    public convenience init(site: HTTPSite) {
        self.init(limits: site.configuration.limits)
    }

    /// The timeout that applies now: `headerTimeout` while a request is
    /// arriving (then 408), `keepAliveTimeout` between requests (then close
    /// silently), nil while a stage works on a request (the server is the
    /// slow one).
    public func timeout(_ limits: HTTPLimits) -> Duration? {
        if pending != nil { return nil }
        return parser.isInsideRequest ? limits.headerTimeout : limits.keepAliveTimeout
    }
}
