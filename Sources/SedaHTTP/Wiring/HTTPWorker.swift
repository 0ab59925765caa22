import Logging
import Seda
import Synchronization

/// One shared thread's share of the server: its request processor and the
/// connections that thread owns. Every stage that calls it (the read
/// stage's replica, the parse, reply and control stages of the thread) is
/// bound to the thread, so it runs one call at a time with no lock.
///
/// Per connection it applies the processor's ``HTTPConnectionAction``s
/// (pause reading while a stage works, resume, close after the flush),
/// keeps the header timer (one scheduled timer at most, checked lazily
/// against a deadline that moves with each request), and on a drain closes
/// connections as soon as they owe nothing.
///
/// Thread rules: its own shared thread only, except ``openConnections``
/// (any thread) and ``attach(processor:control:)`` (before the listener starts).
final class HTTPWorker: @unchecked Sendable {
    // @unchecked: confined to its thread (see the thread rules).
    let index: Int
    let site: HTTPSite
    let limits: HTTPLimits
    let clock: SedaClock
    let timers: Timers
    let accessLog: Logger?
    /// Connections of this worker open now (with a state: they sent a byte).
    /// Written by the worker's thread; read by ``HTTPServer`` for the drain
    /// (relaxed: a count, pairs with nothing).
    let openConnections = Atomic<Int>(0)
    /// Set once before the listener starts, then read-only.
    private(set) var processor: HTTPRequestProcessor!
    private(set) var control: Sink<HTTPControlEvent>!
    /// The server is shutting down: close each connection once it owes nothing.
    private var draining = false
    /// The open connections, a doubly linked list through their states.
    private var first: HTTPConnectionState?

    init(index: Int, site: HTTPSite, clock: SedaClock, timers: Timers, accessLog: Logger?) {
        self.index = index
        self.site = site
        limits = site.configuration.limits
        self.clock = clock
        self.timers = timers
        self.accessLog = accessLog
    }

    func attach(processor: HTTPRequestProcessor, control: Sink<HTTPControlEvent>) {
        self.processor = processor
        self.control = control
        if accessLog != nil {
            processor.requestObserver = { session, head in
                let state = unsafeDowncast(session.context!, to: HTTPConnectionState.self)
                let target = String(decoding: head.target.prefix(512), as: UTF8.self)
                let method = head.method == .get ? "GET" : head.method == .head ? "HEAD" : "(other method)"
                state.loggedRequests.append("\(method) \(target) \(head.version)")
            }
        }
    }

    // MARK: Events from the stages

    /// The connection's state, made on its first packet.
    func state(of connection: Connection) -> HTTPConnectionState {
        if let u = connection.userState { return unsafeDowncast(u, to: HTTPConnectionState.self) }
        let state = HTTPConnectionState(session: HTTPSession(site: site), handle: connection.retained())
        state.session.context = state
        connection.userState = state
        state.next = first
        first?.previous = state
        first = state
        openConnections.store(openConnections.load(ordering: .relaxed) + 1, ordering: .relaxed)
        return state
    }

    /// Bytes arrived on `state`'s connection (the read stage's handler in
    /// the fused pipeline, the parse stage in the staged one).
    func received(_ bytes: UnsafeRawBufferPointer, _ state: HTTPConnectionState) {
        guard let connection = state.writable else { return }
        var output = HTTPConnectionOutput(connection, state, accessLog: accessLog)
        let action = processor.received(bytes, session: state.session, output: &output)
        apply(action, state, connection)
    }

    /// The parse stage refused a packet: 503 and close.
    func shed(_ state: HTTPConnectionState) {
        guard let connection = state.writable else { return }
        var output = HTTPConnectionOutput(connection, state, accessLog: accessLog)
        _ = processor.shed(state.session, output: &output)
        close(state, connection)
    }

    /// A deferred request came back from its stage.
    func completed(_ request: HTTPDeferredRequest) {
        // Closed meanwhile (the close cleared the context): drop the reply.
        guard let context = request.session.context else { return }
        let state = unsafeDowncast(context, to: HTTPConnectionState.self)
        guard let connection = state.writable else { return }
        var output = HTTPConnectionOutput(connection, state, accessLog: accessLog)
        let action = processor.completed(request, output: &output)
        apply(action, state, connection)
    }

    /// The peer closed its writing side. Connections allow half-closure so
    /// that a reply a stage still owes is sent; close once nothing is owed.
    func peerClosed(_ connection: Connection) {
        guard let u = connection.userState else {
            connection.closeAfterFlush()
            return
        }
        let state = unsafeDowncast(u, to: HTTPConnectionState.self)
        state.peerDone = true
        guard let c = state.writable else { return }
        if state.session.pending == nil && state.queuedPackets == 0 { close(state, c) }
    }

    /// The connection is closed: forget it.
    func closed(_ connection: Connection) {
        guard let u = connection.userState else { return }
        let state = unsafeDowncast(u, to: HTTPConnectionState.self)
        state.closing = true
        state.handle = nil
        state.session.context = nil  // the session → state → session cycle
        if let p = state.previous { p.next = state.next } else { first = state.next }
        state.next?.previous = state.previous
        state.previous = nil
        state.next = nil
        connection.userState = nil
        openConnections.store(openConnections.load(ordering: .relaxed) - 1, ordering: .relaxed)
    }

    /// A header timer fell due.
    func headerTimerFired(_ state: HTTPConnectionState) {
        state.timerArmed = false
        guard let connection = state.writable, let deadline = state.headerDeadline else { return }
        if clock.now < deadline {
            arm(state, deadline)  // a later request's deadline
            return
        }
        var output = HTTPConnectionOutput(connection, state, accessLog: accessLog)
        switch processor.timedOut(state.session, output: &output) {
        case .close: close(state, connection)
        case .waitForReply, .read: state.headerDeadline = nil
        }
    }

    /// Graceful shutdown: close what owes nothing now, the rest when it does.
    func drain() {
        draining = true
        var next = first
        while let state = next {
            next = state.next
            if let c = state.writable, isIdle(state) { close(state, c) }
        }
    }

    // MARK: Acting on the processor's answers

    private func isIdle(_ state: HTTPConnectionState) -> Bool {
        state.session.pending == nil && state.queuedPackets == 0 && !state.session.parser.isInsideRequest
    }

    private func apply(_ action: HTTPConnectionAction, _ state: HTTPConnectionState, _ connection: Connection) {
        if state.closing { return }  // a write failed and closed it
        switch action {
        case .close:
            close(state, connection)
        case .waitForReply:
            state.headerDeadline = nil  // the server is the slow one now
            if !state.paused {
                state.paused = true
                connection.pauseReading()
                try? connection.setIdleTimeout(nil)
            }
        case .read:
            // A peer done sending owes nothing more once its packets are
            // parsed: a request it left half-sent can never complete (as
            // in peerClosed). A drain waits for such a request (408 at worst).
            if (state.peerDone && state.queuedPackets == 0) || (draining && isIdle(state)) {
                close(state, connection)
                return
            }
            if state.paused {
                state.paused = false
                try? connection.setIdleTimeout(limits.keepAliveTimeout)
                connection.resumeReading()
            }
            if state.session.parser.isInsideRequest {
                // A new request (also one that started right after others
                // completed in the same packet) gets a deadline of its own.
                let requests = state.session.parser.requestCount
                if state.headerDeadline == nil || state.deadlineRequestCount != requests {
                    let deadline = saturatingAdd(clock.now, limits.headerTimeout.saturatingNanoseconds)
                    state.headerDeadline = deadline
                    state.deadlineRequestCount = requests
                    if !state.timerArmed { arm(state, deadline) }
                }
            } else {
                state.headerDeadline = nil
            }
        }
    }

    private func arm(_ state: HTTPConnectionState, _ deadline: Int64) {
        do {
            try timers.schedule(
                HTTPControlEvent(.headerTimer(state)), to: control, atNanoseconds: deadline)
            state.timerArmed = true
        } catch {
            // The timers are stopping with the server; the idle timeout remains.
        }
    }

    private func close(_ state: HTTPConnectionState, _ connection: Connection) {
        state.closing = true
        connection.closeAfterFlush()
    }
}

@inline(__always)
private func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
    let (s, o) = a.addingReportingOverflow(b)
    return o ? Int64.max : s
}
