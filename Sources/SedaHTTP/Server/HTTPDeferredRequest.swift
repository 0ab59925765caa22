import Seda

/// A request that cannot be answered on the spot: a page-cache miss (or a
/// page to revalidate) for the file-read stage, `/bottleneck`, `/status`,
/// `/metrics`. It carries what must outlive the received packet (the path,
/// the conditions, the connection's session) to the stage, which fills in
/// ``result`` and sends it on to ``replyTo``; there
/// ``HTTPRequestProcessor/completed(_:output:)`` writes the response.
///
/// Thread rules: created on the connection's owner thread, then owned by
/// one stage at a time; the queue hand-offs order the accesses to ``result``.
public final class HTTPDeferredRequest: @unchecked Sendable {
    // @unchecked: handed from stage to stage, never shared.
    /// What the stage is asked to do.
    public enum Work: Sendable, Equatable {
        /// Open and read the file at ``path`` (a cache miss), or check it
        /// against ``stalePage`` and reuse that page if unchanged.
        case file
        /// Burn the configured CPU, then answer with the default page.
        case bottleneck
        /// The live statistics page.
        case status
        /// The Prometheus exposition.
        case metrics
    }

    /// What the stage found.
    public enum Result: Sendable {
        /// Not filled in yet.
        case pending
        /// A page from memory.
        case page(CachedPage)
        /// A file too large for the cache, to send with sendfile.
        case file(HTTPFileBody, contentType: StaticString, identity: FileIdentity)
        /// A generated page (status, metrics).
        case generated(HTTPBuffer, contentType: StaticString)
        /// A directory asked for without its trailing slash.
        case redirectToDirectory
        /// An error status (404, 403, 500).
        case status(HTTPStatus)
    }

    public let work: Work
    /// The connection's state.
    public let session: HTTPSession
    /// The normalised path (the page-cache key).
    public let path: [UInt8]
    /// The query as requested, kept on a redirect.
    public let query: [UInt8]?
    public let isHead: Bool
    public let keepAlive: Bool
    public let conditions: HTTPConditions
    /// The request's position on its connection.
    public let sequence: Int
    /// A cached page whose file is to be checked (``Work/file`` only).
    public let stalePage: CachedPage?
    /// Where the stage sends the request when done.
    public let replyTo: Sink<HTTPDeferredRequest>
    /// Filled in by the stage.
    @exclusivity(unchecked) public var result: Result = .pending

    public init(
        work: Work, session: HTTPSession, path: [UInt8], query: [UInt8]?,
        isHead: Bool, keepAlive: Bool, conditions: HTTPConditions, sequence: Int,
        stalePage: CachedPage?, replyTo: Sink<HTTPDeferredRequest>
    ) {
        self.work = work
        self.session = session
        self.path = path
        self.query = query
        self.isHead = isHead
        self.keepAlive = keepAlive
        self.conditions = conditions
        self.sequence = sequence
        self.stalePage = stalePage
        self.replyTo = replyTo
    }

    /// Hands the request to ``replyTo``, waiting while its queue is full (a
    /// dedicated stage may block; a lost reply would hang the connection).
    /// Dropped only when the reply stage is gone (shutdown).
    public func reply() {
        do {
            try replyTo.enqueue(self, timeout: nil)
        } catch {
            // The runtime is stopping: the connection goes with it.
        }
    }
}
