import Logging
import Seda

/// Where the HTTP parse runs relative to the socket reads.
public enum HTTPPipeline: String, Sendable, Equatable, CaseIterable {
    /// Parse, cache lookup and response writing are called directly by the
    /// read stage's handler (no queue between read and parse): the default,
    /// and the SEDA author's later lesson where a queue only costs.
    case fused
    /// A real stage per worker between read and parse (`http-parse-i`,
    /// bound to the same thread): every packet is queued once more, and the
    /// parse stage's admission controller (``HTTPServerOptions/parseAdmission``)
    /// can refuse packets, answered `503` with `Retry-After`.
    case staged
}

/// How an ``HTTPServer`` listens and wires its stages (the request path's
/// own settings are in ``HTTPServerConfiguration``).
public struct HTTPServerOptions: Sendable {
    /// A numeric IPv4 or IPv6 address to listen on.
    public var host = "127.0.0.1"
    /// The port (0: one the kernel chooses, ``HTTPServer/port``).
    public var port: UInt16 = 8080
    /// Fused or staged read → parse.
    public var pipeline = HTTPPipeline.fused
    /// The most connections open at once (nil: no limit). At the limit the
    /// listener stops accepting: further clients wait in the kernel's backlog.
    public var maxConnections: Int? = nil
    /// `listen(2)`'s backlog (0: the socket layer's default).
    public var backlog = 0
    /// Output limits of each connection (watermarks, hard limit). Its idle
    /// timeout and half-close are the server's own (keep-alive timeout,
    /// replies owed after the peer's end of stream) and are overwritten.
    public var connection = ConnectionOptions()
    /// Staged pipeline: each parse stage's queue capacity (a full queue is
    /// a refusal too: 503).
    public var parseQueueCapacity = 1024
    /// Staged pipeline: guards every parse stage (e.g. a
    /// ``QueueThreshold``); a refused packet is answered 503 with
    /// Retry-After and its connection closed (counted in
    /// ``HTTPCounters/shed``). Ignored by the fused pipeline, which has no
    /// queue there (its load conditioning sits at the stages behind).
    public var parseAdmission: (any AdmissionController<HTTPPacket>)? = nil
    /// Guards the file-read stage.
    public var fileAdmission: (any AdmissionController<HTTPDeferredRequest>)? = nil
    /// Guards the `/bottleneck` stage (e.g. a ``ResponseTimeController``).
    public var bottleneckAdmission: (any AdmissionController<HTTPDeferredRequest>)? = nil
    /// The access log: one line per response at `info` level (nil: off).
    public var accessLog: Logger? = nil
    /// The tick of the header-timeout timers.
    public var timerResolution: Duration = .milliseconds(10)

    public init() {}
}
