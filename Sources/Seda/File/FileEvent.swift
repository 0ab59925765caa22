import CSedaCore
import Glibc

/// What a file completion reports (`enum seda_file_op`).
public enum FileOperation: Sendable, Equatable {
    /// ``FileStage/open(_:access:options:permissions:sink:tag:)`` finished:
    /// ``FileEvent/file`` is the new file, or ``FileEvent/error`` says why not.
    case open
    /// A read finished: ``FileEvent/bytes`` holds what was read (fewer bytes
    /// than asked only at the end of the file, none at or past it).
    case read
    /// A write finished: ``FileEvent/count`` bytes were written.
    case write
    /// ``AsyncFile/flush(dataOnly:sink:tag:)`` with `dataOnly: false` (fsync).
    case flush
    /// ``AsyncFile/flush(dataOnly:sink:tag:)`` with `dataOnly: true` (fdatasync).
    case flushData
    /// ``AsyncFile/close(sink:tag:)`` finished: the file's last completion.
    case close

    init(_ raw: Int32) {
        switch raw {
        case Int32(SEDA_FILE_OPEN.rawValue): self = .open
        case Int32(SEDA_FILE_READ.rawValue): self = .read
        case Int32(SEDA_FILE_WRITE.rawValue): self = .write
        case Int32(SEDA_FILE_FSYNC.rawValue): self = .flush
        case Int32(SEDA_FILE_FDATASYNC.rawValue): self = .flushData
        default: self = .close
        }
    }
}

/// One file completion: a view of the C core's event (`seda_file_event_t`),
/// with no copy. Valid only while its ``FileEventBatch`` (during
/// ``FileEventHandler/handle(_:)``) or its ``TakenFileEvent`` holds it:
/// never keep it, nor the ``bytes`` pointer, beyond that.
///
/// Errors are values here, never crashes: ``error`` is set when the request
/// failed (``SedaError/notFound`` for `ENOENT`, `.system(errno: EACCES)`,
/// `.system(errno: EISDIR)`, `.system(errno: ECANCELED)` for a request
/// cancelled by a close or a shutdown, `.system(errno: EIO)`, ...).
public struct FileEvent {
    @usableFromInline let raw: UnsafeMutablePointer<seda_file_event_t>

    @usableFromInline init(raw: UnsafeMutablePointer<seda_file_event_t>) { self.raw = raw }

    /// The request this completes.
    public var operation: FileOperation { FileOperation(raw.pointee.op) }

    /// Why the request failed, or nil when it succeeded.
    public var error: SedaError? {
        let r = raw.pointee.result
        return r >= 0 ? nil : SedaError(code: Int32(clamping: r))
    }

    /// The C core's result: bytes transferred (reads and writes), 0 (open,
    /// flush, close), or a negative errno.
    @inlinable public var result: Int64 { raw.pointee.result }

    /// Bytes read or written (0 on failure and for the other operations). A
    /// read returns fewer bytes than ``requestedCount`` only at the end of
    /// the file.
    @inlinable public var count: Int { raw.pointee.result > 0 ? Int(raw.pointee.result) : 0 }

    /// Bytes the read or write asked for.
    @inlinable public var requestedCount: Int { raw.pointee.len }

    /// Where the read or write was.
    @inlinable public var offset: UInt64 { raw.pointee.offset }

    /// The bytes a read brought (``count`` of them) or a write wrote, in
    /// their buffer, without a copy: valid while the event is (the handler's
    /// call, or the ``TakenFileEvent``). Empty for the other operations and
    /// on failure.
    @inlinable public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: raw.pointee.buf, count: count)
    }

    /// The request's tag, as given.
    @inlinable public var tag: UInt64 { UInt64(UInt(bitPattern: raw.pointee.user)) }

    /// The file: the new one for a successful ``FileOperation/open``, the
    /// file of a read, write, flush or close; nil for a failed open. Each
    /// call makes a new ``AsyncFile`` reference (an allocation): in a hot
    /// read loop compare with ``isFile(_:)`` instead.
    public var file: AsyncFile? { raw.pointee.file.map { AsyncFile(retaining: $0) } }

    /// Whether this event belongs to `file`, without allocating.
    @inlinable public func isFile(_ file: AsyncFile) -> Bool { raw.pointee.file == file.pointer }

    /// How long the request took, from acceptance to its result.
    public var latency: Duration {
        let ns = raw.pointee.completed_ns &- raw.pointee.accepted_ns
        return .nanoseconds(max(ns, 0))
    }
}

/// The completions handed to ``FileEventHandler/handle(_:)``: a view over the
/// C core's batch buffer. Events still in the batch when the handler returns
/// are released (a pooled read buffer goes back to its pool);
/// ``take(_:)`` keeps one beyond the call. Valid only during the call.
public struct FileEventBatch: ~Copyable {
    @usableFromInline let base: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    /// Number of slots (taken slots included).
    public let count: Int

    @usableFromInline init(base: UnsafeMutablePointer<UnsafeMutableRawPointer?>, count: Int) {
        self.base = base
        self.count = count
    }

    deinit {
        for i in 0..<count {
            if let p = base[i] { seda_file_event_release(p.assumingMemoryBound(to: seda_file_event_t.self)) }
        }
    }

    /// The event in slot `i`, or nil if it was taken.
    @inlinable
    public subscript(i: Int) -> FileEvent? {
        precondition(i >= 0 && i < count, "index \(i) out of 0..<\(count)")
        return base[i].map { FileEvent(raw: $0.assumingMemoryBound(to: seda_file_event_t.self)) }
    }

    /// Moves the event in slot `i` out of the batch, to keep it (and its
    /// bytes) beyond the call; nil if it was taken already.
    @inlinable
    public mutating func take(_ i: Int) -> TakenFileEvent? {
        precondition(i >= 0 && i < count, "index \(i) out of 0..<\(count)")
        guard let p = base[i] else { return nil }
        base[i] = nil
        return TakenFileEvent(raw: p.assumingMemoryBound(to: seda_file_event_t.self))
    }

    /// Calls `body` with each event still in the batch, in order.
    @inlinable
    public func forEach(_ body: (FileEvent) throws -> Void) rethrows {
        for i in 0..<count {
            if let p = base[i] { try body(FileEvent(raw: p.assumingMemoryBound(to: seda_file_event_t.self))) }
        }
    }
}

/// A completion taken out of its batch (or delivered to a
/// ``FileSink/callback(_:)``): the event, and a pooled read buffer it owns,
/// live until this value is consumed or goes out of scope, on any thread.
public struct TakenFileEvent: ~Copyable, @unchecked Sendable {
    // @unchecked: the C event may be released from any thread.
    @usableFromInline let raw: UnsafeMutablePointer<seda_file_event_t>

    @usableFromInline init(raw: UnsafeMutablePointer<seda_file_event_t>) { self.raw = raw }

    deinit { seda_file_event_release(raw) }

    /// The event (valid while this value lives).
    public var event: FileEvent { FileEvent(raw: raw) }

    /// Takes the pooled buffer of a read or write (``FileStage``'s pool) out
    /// of the event without a copy: the buffer outlives the event, and can
    /// carry the next request (``AsyncFile/write(at:buffer:count:sink:tag:)``,
    /// ``AsyncFile/read(at:into:count:sink:tag:)``). Its ``FileBuffer/count``
    /// is what the request asked for; the bytes read are its first
    /// ``FileEvent/count``. Nil if the event owns no buffer (a failed
    /// request's buffer is still owned and taken the same way; other
    /// operations own none) or it was taken already.
    public mutating func takeBuffer() -> FileBuffer? {
        let len = raw.pointee.len
        guard let p = seda_file_event_take_buffer(raw) else { return nil }
        return FileBuffer(adopting: p, count: len, stage: seda_file_event_stage(raw)!)
    }
}
