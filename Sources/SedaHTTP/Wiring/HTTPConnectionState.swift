import Seda
import Synchronization

/// The wiring's state of one connection: its HTTP session, a reference to
/// the socket-layer connection (so that a reply coming back from a stage
/// finds where to write), the header timer, and its place in the worker's
/// list of open connections (for a graceful shutdown).
///
/// The connection keeps it as its user state and the session points back
/// to it (``HTTPSession/context``); the cycle connection → state → handle
/// is broken when the connection's `closed` event arrives.
///
/// Thread rules: the connection's owner thread only (its worker's stages,
/// all bound to that thread).
final class HTTPConnectionState: @unchecked Sendable {
    // @unchecked: confined to the owner thread (see the thread rules).
    let session: HTTPSession
    /// The connection while it is open; nil once `closed` arrived.
    var handle: ConnectionHandle?
    /// The server asked it to close (after its flush): write nothing more.
    var closing = false
    /// Reading is paused while a stage works on a request.
    var paused = false
    /// The peer closed its writing side: close once nothing is owed.
    var peerDone = false
    /// When the request arriving now must be complete (the runtime's clock,
    /// nanoseconds); nil between requests and while a stage works.
    var headerDeadline: Int64?
    /// The parser's ``HTTPRequestParser/requestCount`` when ``headerDeadline``
    /// was set: a different count means that request completed and the one
    /// arriving now is another (its own deadline).
    var deadlineRequestCount = 0
    /// A header timer is scheduled (at most one per connection).
    var timerArmed = false
    /// Staged pipeline: packets queued in the parse stage, not handled yet.
    var queuedPackets = 0
    /// Access log: the request lines answered next, oldest first.
    var loggedRequests: [String] = []
    /// The worker's list of open connections.
    var previous: HTTPConnectionState?
    var next: HTTPConnectionState?

    init(session: HTTPSession, handle: ConnectionHandle) {
        self.session = session
        self.handle = handle
        connectionStatesAlive.add(1)
    }

    deinit { connectionStatesAlive.add(-1) }

    /// The connection, if open and not closing.
    @inline(__always)
    var writable: Connection? { closing ? nil : handle?.connection }
}

/// Connection states alive in the process (tests check that closed
/// connections leave none behind). Relaxed: a count, pairs with nothing.
let connectionStatesAlive = LiveCount()

final class LiveCount: Sendable {
    private let value = Atomic<Int>(0)
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}
