import CSedaCore
import Glibc

/// A TCP connection of the socket layer: the place to write.
///
/// A connection belongs to the shared thread (``thread``) that accepted or
/// connected it. Every method may be called from any thread: on the owner
/// thread a write appends to the connection's output with no system call
/// (the loop flushes once per iteration, one `sendmsg` or one io_uring send
/// for everything queued); from another thread the call is posted to the
/// owner, in order with that thread's other calls, and its failure, if any,
/// comes later (the connection closes, a zero-copy buffer's owner is
/// released).
///
/// `Connection` is a handle without a reference of its own: it is valid
/// while the event it came from is (during ``IOHandler/handle(_:)``, or
/// while a ``TakenIOEvent`` lives). Keep it longer with ``retained()``.
public struct Connection: Hashable, @unchecked Sendable {
    // @unchecked: the C connection is safe to call from any thread.
    @usableFromInline let pointer: OpaquePointer

    @usableFromInline init(pointer: OpaquePointer) { self.pointer = pointer }

    // MARK: Writing

    /// Copies `bytes` into the connection's output buffer (coalesced with
    /// the writes before it). Throws ``SedaError/closed`` (closed, closing,
    /// or writing shut down) or `.system(errno: ENOBUFS)` (the hard limit,
    /// ``ClogPolicy/notify``; with ``ClogPolicy/close`` the connection
    /// closes and the error is `.closed`).
    @inlinable
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SedaError) {
        _ = try SedaError.check(seda_conn_write_copy(pointer, bytes.baseAddress, bytes.count))
    }

    /// Copies the bytes of `bytes` (see ``write(_:)-(UnsafeRawBufferPointer)``).
    public func write(_ bytes: [UInt8]) throws(SedaError) {
        let r = bytes.withUnsafeBytes { seda_conn_write_copy(pointer, $0.baseAddress, $0.count) }
        _ = try SedaError.check(r)
    }

    /// Copies the UTF-8 bytes of `string`.
    public func write(_ string: String) throws(SedaError) {
        var s = string
        let r = s.withUTF8 { seda_conn_write_copy(pointer, $0.baseAddress, $0.count) }
        _ = try SedaError.check(r)
    }

    /// Queues `buffer` without copying it: its bytes must stay valid and
    /// unchanged until `owner` (retained by the call) is released, which
    /// happens on the owner thread once they are sent or the connection dies.
    /// On a thrown error nothing was queued and `owner` is not kept.
    public func write(buffer: UnsafeRawBufferPointer, retaining owner: AnyObject) throws(SedaError) {
        let ctx = Unmanaged.passRetained(owner).toOpaque()
        let r = seda_conn_write(pointer, buffer.baseAddress, buffer.count, releaseOwner, ctx)
        if r < 0 {
            Unmanaged<AnyObject>.fromOpaque(ctx).release()
            throw SedaError(code: r)
        }
    }

    /// Sends a packet's own bytes back without a copy and releases the
    /// packet once they are sent (the zero-copy echo). On a thrown error the
    /// packet is released.
    public func write(packet: consuming TakenIOEvent) throws(SedaError) {
        let raw = packet.leak()
        let r = seda_conn_write(pointer, raw.pointee.data, raw.pointee.len, releasePacket, raw)
        if r < 0 {
            seda_io_event_release(raw)
            throw SedaError(code: r)
        }
    }

    /// Queues `count` bytes of the open file `fd` from `offset`, sent with
    /// sendfile(2) when their turn comes. `fd` must stay open until `owner`
    /// (retained by the call, if any) is released, after the bytes are sent
    /// or the connection dies. File regions count nothing toward the output
    /// limits.
    public func write(file fd: Int32, offset: UInt64, count: UInt64, retaining owner: AnyObject? = nil)
        throws(SedaError)
    {
        let ctx = owner.map { Unmanaged.passRetained($0).toOpaque() }
        let r = seda_conn_sendfile(pointer, fd, offset, count, releaseOwnerOrNil, ctx)
        if r < 0 {
            if let ctx { Unmanaged<AnyObject>.fromOpaque(ctx).release() }
            throw SedaError(code: r)
        }
    }

    /// Asks for a ``IOEventKind/writeDone`` event carrying `tag` once
    /// everything queued before this call is sent.
    public func markWritten(tag: UInt64) throws(SedaError) {
        _ = try SedaError.check(seda_conn_write_mark(pointer, tag))
    }

    /// Half-close: once everything queued is sent, the writing side is shut
    /// (the peer reads end of stream); reading goes on.
    public func shutdownWrite() throws(SedaError) {
        _ = try SedaError.check(seda_conn_shutdown_write(pointer))
    }

    // MARK: Closing and flow control

    /// Closes now: queued output is dropped. ``IOEventKind/closed`` follows.
    /// Closing a closed connection does nothing.
    public func close() {
        _ = seda_conn_close(pointer, Int32(SEDA_CLOSE_NOW.rawValue))
    }

    /// Stops reading, sends what is queued, then closes.
    public func closeAfterFlush() {
        _ = seda_conn_close(pointer, Int32(SEDA_CLOSE_AFTER_FLUSH.rawValue))
    }

    /// Stops reading (flow control: the kernel's buffers, then the peer,
    /// wait). Bytes received already are held until ``resumeReading()``.
    public func pauseReading() {
        _ = seda_conn_read_stop(pointer)
    }

    /// Starts reading again.
    public func resumeReading() {
        _ = seda_conn_read_start(pointer)
    }

    /// Sends this connection's later events to `stage` (the replica of the
    /// connection's thread, for a stage replicated per thread).
    public func sendEvents(to stage: IOStage) throws(SedaError) {
        _ = try SedaError.check(seda_conn_set_sink(pointer, stage.sink(forThread: thread)))
    }

    /// Closes the connection after `timeout` without a byte received or
    /// sent (nil: never). Activity moves the deadline at no cost per packet.
    public func setIdleTimeout(_ timeout: Duration?) throws(SedaError) {
        _ = try SedaError.check(seda_conn_set_idle_timeout(pointer, timeout?.saturatingNanoseconds ?? 0))
    }

    // MARK: State

    /// The application's state for this connection (a session, a parser),
    /// released with the connection. Read and set it from the connection's
    /// own handler (its owner thread): setting it from two threads at once,
    /// or reading it on one thread while another sets it, is a race.
    public var userState: AnyObject? {
        get {
            guard let p = seda_conn_user(pointer) else { return nil }
            return Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue()
        }
        nonmutating set {
            if let newValue {
                seda_conn_set_user(pointer, Unmanaged.passRetained(newValue).toOpaque(), releaseUserState)
            } else {
                seda_conn_set_user(pointer, nil, nil)
            }
        }
    }

    /// The shared thread that owns the connection.
    public var thread: Int { Int(seda_conn_thread(pointer)) }

    /// A number unique within the process.
    public var id: UInt64 { seda_conn_id(pointer) }

    /// Bytes of output queued in memory now (exact on the owner thread).
    public var queuedBytes: Int { seda_conn_queued(pointer) }

    /// The peer's address, "ip:port".
    public var peer: String? {
        var buf = [CChar](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBufferPointer { seda_conn_peer(pointer, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// A reference that keeps the connection valid as long as it lives.
    public func retained() -> ConnectionHandle { ConnectionHandle(self) }
}

/// A reference to a connection, valid as long as the handle lives (on any
/// thread), independently of the events that named it.
public final class ConnectionHandle: Sendable, Hashable {
    /// The connection.
    public let connection: Connection

    init(_ c: Connection) {
        seda_conn_retain(c.pointer)
        connection = c
    }

    deinit { seda_conn_release(connection.pointer) }

    public static func == (a: ConnectionHandle, b: ConnectionHandle) -> Bool { a.connection == b.connection }
    public func hash(into h: inout Hasher) { h.combine(connection) }
}

// Plain C functions (no actor): the owner loop's thread calls them.
private let releaseOwner: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, Int32) -> Void = {
    ctx, _, _ in
    Unmanaged<AnyObject>.fromOpaque(ctx!).release()
}

private let releaseOwnerOrNil: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, Int32) -> Void = {
    ctx, _, _ in
    if let ctx { Unmanaged<AnyObject>.fromOpaque(ctx).release() }
}

private let releasePacket: @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, Int32) -> Void = {
    ctx, _, _ in
    seda_io_event_release(ctx!.assumingMemoryBound(to: seda_io_event_t.self))
}

private let releaseUserState: @convention(c) (UnsafeMutableRawPointer?) -> Void = { p in
    Unmanaged<AnyObject>.fromOpaque(p!).release()
}
