/// The request methods the server tells apart: GET and HEAD are served,
/// everything else is answered 405 (a method http_parser knows) or 501
/// (one it does not).
public enum HTTPMethod: Sendable, Equatable {
    case get
    case head
    /// Any other method http_parser recognises (POST, PUT, OPTIONS, ...).
    case other
}

/// An HTTP version from the request line.
public struct HTTPVersion: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }
    public static let http10 = HTTPVersion(major: 1, minor: 0)
    public static let http11 = HTTPVersion(major: 1, minor: 1)
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// One parsed request head, as views into the received bytes.
///
/// Produced by ``HTTPRequestParser`` and valid only during the callback that
/// receives it: every `UnsafeRawBufferPointer` points into the packet being
/// fed (or the parser's own buffer when the request arrived in pieces), so
/// anything needed later must be copied (``HTTPDeferredRequest`` does).
///
/// A head with a ``failure`` is a request the server must refuse: answer
/// with that status and close the connection; its views may be empty.
public struct HTTPRequestHead {
    /// GET, HEAD or another method (``HTTPMethod/other`` too for a request
    /// refused before its method was read).
    public var method: HTTPMethod
    /// The version from the request line.
    public var version: HTTPVersion
    /// Whether the connection stays open after the response: HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection:
    /// keep-alive`, and never past ``HTTPLimits/maxRequestsPerConnection``
    /// or after a refused request.
    public var keepAlive: Bool
    /// The request's position on its connection, from 0.
    public var sequence: Int
    /// Non-nil: the request is refused with this status (400, 405, 414,
    /// 431, 501, 505); the connection closes after the response.
    public var failure: HTTPStatus?
    /// The request target exactly as sent (origin or absolute form).
    public var target: UnsafeRawBufferPointer
    /// The path of the target, still percent-encoded, without query or
    /// fragment; "/" for an absolute-form target with no path.
    public var path: UnsafeRawBufferPointer
    /// The query (after '?', without it), if any.
    public var query: UnsafeRawBufferPointer?
    /// The Host header's value (nil when absent).
    public var host: UnsafeRawBufferPointer?
    /// The If-Modified-Since header's value (nil when absent).
    public var ifModifiedSince: UnsafeRawBufferPointer?
    /// The Range header's value (nil when absent).
    public var range: UnsafeRawBufferPointer?
    /// The If-Range header's value (nil when absent).
    public var ifRange: UnsafeRawBufferPointer?

    /// A refusal: no views, the connection closes. `method` when known (a
    /// refused HEAD is answered without a body).
    static func refused(
        _ status: HTTPStatus, version: HTTPVersion, sequence: Int,
        method: HTTPMethod = .other
    ) -> HTTPRequestHead {
        HTTPRequestHead(
            method: method, version: version, keepAlive: false, sequence: sequence,
            failure: status, target: UnsafeRawBufferPointer(start: nil, count: 0),
            path: UnsafeRawBufferPointer(start: nil, count: 0), query: nil, host: nil,
            ifModifiedSince: nil, range: nil, ifRange: nil)
    }

    /// The target as a string (for logs and tests; allocates).
    public var targetString: String { String(decoding: target, as: UTF8.self) }
    /// The encoded path as a string (for logs and tests; allocates).
    public var pathString: String { String(decoding: path, as: UTF8.self) }
}
