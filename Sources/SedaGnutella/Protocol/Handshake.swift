/// The Gnutella 0.4 connection handshake as a state machine over byte
/// chunks, however the transport splits them: the connecting servent sends
/// `GNUTELLA CONNECT/0.4\n\n`, the accepting one answers `GNUTELLA OK\n\n`,
/// and descriptors follow at once (possibly in the same chunk as the last
/// handshake byte).
///
/// Each side waits for one fixed string and compares byte by byte, so a
/// wrong byte fails at once (garbage is refused without waiting for more)
/// and nothing is buffered. 0.6 handshakes (`GNUTELLA CONNECT/0.6\r\n`
/// with headers) fail: this router speaks 0.4 only.
///
/// Thread rules: a value type, owned by its connection's session.
public struct Handshake: Sendable {
    public enum Role: Sendable {
        /// We accepted the connection: expect CONNECT, answer OK.
        case accepting
        /// We connected out: send CONNECT first, expect OK.
        case connecting
    }

    public enum Step: Equatable, Sendable {
        /// Every byte so far matches; send nothing yet.
        case needMore
        /// The expected string is complete: `consumed` bytes of this chunk
        /// were handshake, the rest are descriptors.
        case done(consumed: Int)
        /// A byte at `offset` of this chunk does not match.
        case failed(offset: Int)
    }

    public let role: Role
    private var matched = 0
    private var finished = false
    private var broken = false

    public init(role: Role) { self.role = role }

    /// What this side must receive.
    public var expected: [UInt8] {
        role == .accepting ? GnutellaWire.connectRequest : GnutellaWire.connectReply
    }

    /// What this side sends: CONNECT at once when connecting, OK once the
    /// CONNECT has arrived when accepting.
    public var reply: [UInt8] {
        role == .accepting ? GnutellaWire.connectReply : GnutellaWire.connectRequest
    }

    public var isComplete: Bool { finished }
    public var isFailed: Bool { broken }
    /// Handshake bytes received so far.
    public var bytesMatched: Int { matched }

    /// Feeds the next chunk. After `.done` or `.failed` the machine is
    /// finished: later calls return `.failed(offset: 0)`.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer) -> Step {
        guard !finished, !broken else { return .failed(offset: 0) }
        let want = role == .accepting ? Handshake.request : Handshake.replyBytes
        var i = 0
        while i < chunk.count, matched < want.count {
            if chunk[i] != want[matched] {
                broken = true
                return .failed(offset: i)
            }
            matched += 1
            i += 1
        }
        if matched == want.count {
            finished = true
            return .done(consumed: i)
        }
        return .needMore
    }

    public mutating func feed(_ chunk: [UInt8]) -> Step {
        chunk.withUnsafeBytes { feed($0) }
    }

    private static let request = GnutellaWire.connectRequest
    private static let replyBytes = GnutellaWire.connectReply
}
