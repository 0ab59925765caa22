/// An HTTP status code with its reason phrase, as constant bytes.
///
/// Only the statuses the server sends are named; each carries its status line
/// ("HTTP/1.1 404 Not Found\r\n") as a `StaticString`, so writing one costs a
/// copy of constant bytes.
public struct HTTPStatus: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The three-digit code.
    public let code: Int
    /// "HTTP/1.1 <code> <reason>\r\n".
    public let statusLine: StaticString

    public init(code: Int, statusLine: StaticString) {
        self.code = code
        self.statusLine = statusLine
    }

    public static func == (a: HTTPStatus, b: HTTPStatus) -> Bool { a.code == b.code }
    public func hash(into h: inout Hasher) { h.combine(code) }
    public var description: String { "\(code)" }

    /// The reason phrase ("Not Found").
    public var reason: String {
        // "HTTP/1.1 404 Not Found\r\n": after the code, before the CRLF.
        statusLine.withUTF8Buffer { String(decoding: $0.dropFirst(13).dropLast(2), as: UTF8.self) }
    }

    /// Whether the response to this status may carry a body (not 1xx, 204, 304).
    public var allowsBody: Bool { !(code < 200 || code == 204 || code == 304) }

    public static let ok = HTTPStatus(code: 200, statusLine: "HTTP/1.1 200 OK\r\n")
    public static let partialContent = HTTPStatus(code: 206, statusLine: "HTTP/1.1 206 Partial Content\r\n")
    public static let movedPermanently = HTTPStatus(code: 301, statusLine: "HTTP/1.1 301 Moved Permanently\r\n")
    public static let notModified = HTTPStatus(code: 304, statusLine: "HTTP/1.1 304 Not Modified\r\n")
    public static let badRequest = HTTPStatus(code: 400, statusLine: "HTTP/1.1 400 Bad Request\r\n")
    public static let forbidden = HTTPStatus(code: 403, statusLine: "HTTP/1.1 403 Forbidden\r\n")
    public static let notFound = HTTPStatus(code: 404, statusLine: "HTTP/1.1 404 Not Found\r\n")
    public static let methodNotAllowed = HTTPStatus(code: 405, statusLine: "HTTP/1.1 405 Method Not Allowed\r\n")
    public static let requestTimeout = HTTPStatus(code: 408, statusLine: "HTTP/1.1 408 Request Timeout\r\n")
    public static let uriTooLong = HTTPStatus(code: 414, statusLine: "HTTP/1.1 414 URI Too Long\r\n")
    public static let rangeNotSatisfiable = HTTPStatus(code: 416, statusLine: "HTTP/1.1 416 Range Not Satisfiable\r\n")
    public static let headerFieldsTooLarge = HTTPStatus(
        code: 431, statusLine: "HTTP/1.1 431 Request Header Fields Too Large\r\n")
    public static let internalServerError = HTTPStatus(
        code: 500, statusLine: "HTTP/1.1 500 Internal Server Error\r\n")
    public static let notImplemented = HTTPStatus(code: 501, statusLine: "HTTP/1.1 501 Not Implemented\r\n")
    public static let serviceUnavailable = HTTPStatus(
        code: 503, statusLine: "HTTP/1.1 503 Service Unavailable\r\n")
    public static let versionNotSupported = HTTPStatus(
        code: 505, statusLine: "HTTP/1.1 505 HTTP Version Not Supported\r\n")
}
