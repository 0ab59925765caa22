import CSedaCore
import Glibc

/// What happened on a socket (`enum seda_io_event_type`).
public enum IOEventKind: Sendable, Equatable {
    /// A connection was accepted (the listener's accept stage).
    case accepted
    /// Bytes arrived: ``IOEvent/bytes``, numbered by ``IOEvent/sequence``.
    case packet
    /// The peer closed its writing side. Unless the connection allows
    /// half-closure (``ConnectionOptions/halfClose``), it closes once its
    /// output is flushed, after the handler has seen this event.
    case readEOF
    /// The connection is closed: its last event. ``IOEvent/error`` says why
    /// (nil: closed by the application).
    case closed
    /// ``Runtime/connect(host:port:stage:tag:timeout:thread:options:)``
    /// succeeded (``IOEvent/tag``).
    case connected
    /// A connect failed (``IOEvent/tag``, ``IOEvent/error``); no connection.
    case connectFailed
    /// Queued output fell to the low watermark after ``unwritable``.
    case writable
    /// Queued output reached the high watermark: stop writing until ``writable``.
    case unwritable
    /// Everything written before ``Connection/markWritten(tag:)`` was sent.
    case writeDone
    /// A write would have passed the hard limit (``ClogPolicy/notify``):
    /// writes are refused until ``writable``.
    case clogged

    @usableFromInline init(_ raw: UInt32) {
        switch raw {
        case UInt32(SEDA_IO_ACCEPTED.rawValue): self = .accepted
        case UInt32(SEDA_IO_PACKET.rawValue): self = .packet
        case UInt32(SEDA_IO_READ_EOF.rawValue): self = .readEOF
        case UInt32(SEDA_IO_CLOSED.rawValue): self = .closed
        case UInt32(SEDA_IO_CONNECTED.rawValue): self = .connected
        case UInt32(SEDA_IO_CONNECT_FAILED.rawValue): self = .connectFailed
        case UInt32(SEDA_IO_WRITABLE.rawValue): self = .writable
        case UInt32(SEDA_IO_UNWRITABLE.rawValue): self = .unwritable
        case UInt32(SEDA_IO_WRITE_DONE.rawValue): self = .writeDone
        default: self = .clogged
        }
    }
}

/// One event of an ``IOEventBatch``: a view of the C core's event, with no
/// copy and no allocation. Valid only while the batch (or the
/// ``TakenIOEvent`` it came from) holds the event: never keep it, nor the
/// ``bytes`` pointer, beyond the handler's call.
public struct IOEvent {
    @usableFromInline let raw: UnsafeMutablePointer<seda_io_event_t>

    @usableFromInline init(raw: UnsafeMutablePointer<seda_io_event_t>) { self.raw = raw }

    /// What happened.
    @inlinable public var kind: IOEventKind { IOEventKind(raw.pointee.type) }

    /// The connection (nil for ``IOEventKind/connectFailed``).
    @inlinable public var connection: Connection? { raw.pointee.conn.map(Connection.init(pointer:)) }

    /// A packet's bytes, in the loop's buffer until the event is released.
    @inlinable public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: raw.pointee.data, count: raw.pointee.len)
    }

    /// A packet's number on its connection, from 0.
    @inlinable public var sequence: UInt64 { raw.pointee.seq }

    /// The tag of a ``IOEventKind/writeDone``, ``IOEventKind/connected`` or
    /// ``IOEventKind/connectFailed``.
    @inlinable public var tag: UInt64 { raw.pointee.tag }

    /// Why a connection closed or a connect failed; nil when it was closed
    /// by the application. ``SedaError/timedOut`` for an idle or connect
    /// timeout, ``SedaError/closed`` when the runtime stopped; other causes
    /// as ``SedaError/system(errno:)`` (ECONNRESET, ECONNREFUSED, ENOBUFS for
    /// the hard limit...).
    public var error: SedaError? { raw.pointee.error == 0 ? nil : SedaError(code: raw.pointee.error) }

    /// The negative errno behind ``error`` (0: none).
    @inlinable public var errorCode: Int32 { raw.pointee.error }
}

/// The events handed to ``IOHandler/handle(_:)``: a view over the C core's
/// batch buffer. Events still in the batch when the handler returns are
/// released (a packet's buffer goes back to its loop); ``take(_:)`` keeps one
/// beyond the call. Valid only during the call.
public struct IOEventBatch: ~Copyable {
    @usableFromInline let base: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    /// Number of slots (taken slots included).
    public let count: Int

    @usableFromInline init(base: UnsafeMutablePointer<UnsafeMutableRawPointer?>, count: Int) {
        self.base = base
        self.count = count
    }

    deinit {
        for i in 0..<count {
            if let p = base[i] { seda_io_event_release(p.assumingMemoryBound(to: seda_io_event_t.self)) }
        }
    }

    /// The event in slot `i`, or nil if it was taken.
    @inlinable
    public subscript(i: Int) -> IOEvent? {
        precondition(i >= 0 && i < count, "index \(i) out of 0..<\(count)")
        return base[i].map { IOEvent(raw: $0.assumingMemoryBound(to: seda_io_event_t.self)) }
    }

    /// Moves the event in slot `i` out of the batch, to keep it (and its
    /// bytes) beyond the call; nil if it was taken already.
    @inlinable
    public mutating func take(_ i: Int) -> TakenIOEvent? {
        precondition(i >= 0 && i < count, "index \(i) out of 0..<\(count)")
        guard let p = base[i] else { return nil }
        base[i] = nil
        return TakenIOEvent(raw: p.assumingMemoryBound(to: seda_io_event_t.self))
    }

    /// Calls `body` with each event still in the batch, in order.
    @inlinable
    public func forEach(_ body: (IOEvent) throws -> Void) rethrows {
        for i in 0..<count {
            if let p = base[i] { try body(IOEvent(raw: p.assumingMemoryBound(to: seda_io_event_t.self))) }
        }
    }
}

/// An event taken out of its batch: it (a packet's buffer, the references
/// it holds) lives until this value is consumed or goes out of scope, on any
/// thread. ``Connection/write(packet:)`` sends a packet's own bytes and
/// releases it once they are out.
public struct TakenIOEvent: ~Copyable, @unchecked Sendable {
    // @unchecked: the C event may be released from any thread.
    @usableFromInline let raw: UnsafeMutablePointer<seda_io_event_t>

    @usableFromInline init(raw: UnsafeMutablePointer<seda_io_event_t>) { self.raw = raw }

    deinit { seda_io_event_release(raw) }

    /// The event (valid while this value lives).
    public var event: IOEvent { IOEvent(raw: raw) }

    /// Hands the C event over without releasing it.
    @usableFromInline consuming func leak() -> UnsafeMutablePointer<seda_io_event_t> {
        let p = raw
        discard self
        return p
    }
}
