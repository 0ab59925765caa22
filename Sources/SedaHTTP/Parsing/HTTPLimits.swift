/// Limits on what a client may send, with nginx's defaults (DESIGN.md:
/// `client_header_buffer_size 1k`, `large_client_header_buffers 4 8k`,
/// `client_header_timeout 60s`, `keepalive_timeout 75s`,
/// `keepalive_requests 1000`).
///
/// A request beyond a size limit is answered 414 (request target) or 431
/// (header line, header block, header count) and its connection closed.
public struct HTTPLimits: Sendable, Equatable {
    /// The per-connection buffer a request split across packets starts in;
    /// it doubles as needed up to ``maxHeaderBlockBytes`` and is freed when
    /// the connection is back at a request boundary.
    public var initialBufferBytes: Int = 1024
    /// The longest request target (the URI in the request line): 414 beyond.
    public var maxRequestTargetBytes: Int = 8192
    /// The longest header line (name and value): 431 beyond.
    public var maxHeaderLineBytes: Int = 8192
    /// The longest header block (request line, headers, blank line): 431 beyond.
    public var maxHeaderBlockBytes: Int = 4 * 8192
    /// The most header lines in one request: 431 beyond.
    public var maxHeaderCount: Int = 100
    /// Requests served on one connection before it is closed (the last
    /// response says `Connection: close`).
    public var maxRequestsPerConnection: Int = 1000
    /// Bytes a client may send ahead while a response is pending (the
    /// connection should stop reading then; this bounds what one packet too
    /// many can add). Beyond it the connection closes after the pending
    /// response.
    public var maxPipelinedBytes: Int = 1 << 20
    /// How long a client may take to send a whole header block (then 408
    /// and close): the socket wiring's timer, checked with
    /// ``HTTPRequestParser/isInsideRequest``.
    public var headerTimeout: Duration = .seconds(60)
    /// How long an idle keep-alive connection stays open between requests.
    public var keepAliveTimeout: Duration = .seconds(75)

    /// The parser's own ceiling (http_parser's `HTTP_MAX_HEADER_SIZE`):
    /// ``maxHeaderBlockBytes`` may not exceed it.
    public static let parserHeaderCeiling = 80 * 1024

    public init() {}

    /// Throws ``HTTPConfigurationError`` naming the first bad value.
    public func validate() throws(HTTPConfigurationError) {
        func check(_ ok: Bool, _ what: String) throws(HTTPConfigurationError) {
            if !ok { throw HTTPConfigurationError(message: what) }
        }
        try check(initialBufferBytes >= 64, "initialBufferBytes \(initialBufferBytes) is below 64")
        try check(
            maxHeaderBlockBytes <= Self.parserHeaderCeiling,
            "maxHeaderBlockBytes \(maxHeaderBlockBytes) is above the parser's \(Self.parserHeaderCeiling)")
        try check(
            maxHeaderBlockBytes >= initialBufferBytes,
            "maxHeaderBlockBytes \(maxHeaderBlockBytes) is below initialBufferBytes \(initialBufferBytes)")
        try check(
            maxRequestTargetBytes >= 16 && maxRequestTargetBytes <= maxHeaderBlockBytes,
            "maxRequestTargetBytes \(maxRequestTargetBytes) is not in 16...maxHeaderBlockBytes")
        try check(
            maxHeaderLineBytes >= 16 && maxHeaderLineBytes <= maxHeaderBlockBytes,
            "maxHeaderLineBytes \(maxHeaderLineBytes) is not in 16...maxHeaderBlockBytes")
        try check(maxHeaderCount >= 1, "maxHeaderCount \(maxHeaderCount) is below 1")
        try check(
            maxPipelinedBytes >= maxHeaderBlockBytes,
            "maxPipelinedBytes \(maxPipelinedBytes) is below maxHeaderBlockBytes \(maxHeaderBlockBytes)")
        try check(maxRequestsPerConnection >= 1, "maxRequestsPerConnection \(maxRequestsPerConnection) is below 1")
        try check(headerTimeout > .zero, "headerTimeout must be positive")
        try check(keepAliveTimeout > .zero, "keepAliveTimeout must be positive")
    }
}

/// A configuration value SedaHTTP refuses; the message names it.
public struct HTTPConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { "invalid HTTP configuration: \(message)" }
}
