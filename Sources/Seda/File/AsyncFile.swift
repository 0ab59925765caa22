import CSedaCore
import Glibc

/// A file opened by a ``FileStage`` (Sandstorm's `AFile`): the place to make
/// read, write, flush and close requests. Each request returns at once; its
/// completion (a ``FileEvent``) arrives later on the ``FileSink`` it names,
/// carrying the request's `tag`. Reads and writes name their offset: no seek
/// position is shared, and any number of them may be in flight at once.
///
/// Requests throw, and then deliver nothing, when refused:
/// `.system(errno: EBADF)` (the file is closing: its close was requested),
/// ``SedaError/closed`` (its stage was destroyed, or the runtime is stopping),
/// ``SedaError/full`` (too many requests pending, or a queue of the stage is
/// full: retry later), ``SedaError/invalidArgument`` (a bad count, or a
/// request not aligned to ``alignment`` on an `O_DIRECT` file),
/// ``SedaError/outOfMemory``. Everything that goes wrong after acceptance is
/// the completion's ``FileEvent/error``.
///
/// Releasing an `AsyncFile` does not close the file: request
/// ``close(sink:tag:)`` (or destroy the stage, which closes what is open).
///
/// Thread rules: every method may be called from any thread, handlers
/// included; a request racing a close on another thread is either accepted
/// (and completes or is cancelled) or refused.
public final class AsyncFile: Hashable, @unchecked Sendable {
    // @unchecked: the C file is safe to call from any thread; the handle
    // never changes and is retained for this object's lifetime.
    @usableFromInline let pointer: OpaquePointer

    init(retaining pointer: OpaquePointer) {
        seda_file_retain(pointer)
        self.pointer = pointer
    }

    deinit { seda_file_release(pointer) }

    public static func == (a: AsyncFile, b: AsyncFile) -> Bool { a.pointer == b.pointer }
    public func hash(into h: inout Hasher) { h.combine(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(pointer)))) }

    /// The alignment an `O_DIRECT` file needs of a request's offset, count
    /// and buffer address (1 for a buffered file). Pooled buffers are
    /// aligned already.
    public var alignment: Int { Int(seda_file_alignment(pointer)) }

    /// Whether the file bypasses the page cache (`O_DIRECT`).
    public var isDirect: Bool { seda_file_is_direct(pointer) != 0 }

    /// The engine serving this file (the thread pool for a libaio stage's
    /// file whose file system refused `O_DIRECT`).
    public var engine: DiskEngine { DiskEngine(cValue: seda_file_engine(pointer)) ?? .threads }

    /// Reads up to `count` bytes at `offset` into a buffer of the stage's
    /// pool. The ``FileOperation/read`` completion's ``FileEvent/bytes`` are
    /// the bytes, with no copy (fewer than `count` only at the end of the
    /// file); ``TakenFileEvent/takeBuffer()`` keeps them beyond the event.
    public func read(at offset: UInt64, count: Int, sink: FileSink, tag: UInt64 = 0) throws(SedaError) {
        guard count >= 0 else { throw .invalidArgument }
        let r = sink.withCSink(tag: tag) { s, user in seda_file_read(pointer, offset, nil, count, s, user) }
        _ = try SedaError.check(r)
    }

    /// Reads up to `count` bytes (nil: the whole buffer) at `offset` into
    /// `buffer`, which the request takes over: the completion event owns it
    /// (``TakenFileEvent/takeBuffer()`` gives it back). The buffer must come
    /// from this file's stage. On a thrown error the buffer is freed.
    public func read(
        at offset: UInt64, into buffer: consuming FileBuffer, count: Int? = nil, sink: FileSink, tag: UInt64 = 0
    )
        throws(SedaError)
    {
        let n = count ?? buffer.count
        guard n >= 0, n <= buffer.count else { throw .invalidArgument }
        let stage = buffer.stage
        let p = buffer.leak()
        let r = sink.withCSink(tag: tag) { s, user in seda_file_read_pooled(pointer, offset, p, n, s, user) }
        if r < 0 {
            seda_file_buffer_free(stage, p)
            throw SedaError(code: r)
        }
    }

    /// Writes `bytes` at `offset`: they are copied once into a buffer of the
    /// stage's pool (aligned, so an `O_DIRECT` file takes them when `offset`
    /// and the count are aligned), so the caller's memory is free on return.
    /// The ``FileOperation/write`` completion's ``FileEvent/count`` says
    /// how many bytes were written.
    public func write(at offset: UInt64, bytes: UnsafeRawBufferPointer, sink: FileSink, tag: UInt64 = 0)
        throws(SedaError)
    {
        guard bytes.count > 0 else { throw .invalidArgument }
        guard let p = seda_file_buffer_alloc(seda_file_stage_of(pointer), bytes.count) else {
            throw .outOfMemory
        }
        p.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        try write(
            at: offset, buffer: FileBuffer(adopting: p, count: bytes.count, stage: seda_file_stage_of(pointer)!),
            sink: sink, tag: tag)
    }

    /// Writes the bytes of `bytes` at `offset` (one copy, see
    /// ``write(at:bytes:sink:tag:)-(_,UnsafeRawBufferPointer,_,_)``).
    public func write(at offset: UInt64, bytes: [UInt8], sink: FileSink, tag: UInt64 = 0) throws(SedaError) {
        let r: Result<Void, SedaError> = bytes.withUnsafeBytes { b in
            do throws(SedaError) {
                try write(at: offset, bytes: b, sink: sink, tag: tag)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try r.get()
    }

    /// Writes the first `count` bytes (nil: all) of `buffer` at `offset`
    /// without a copy; the request takes the buffer over and its completion
    /// event owns it (``TakenFileEvent/takeBuffer()`` gives it back). The
    /// buffer must come from this file's stage. On a thrown error the
    /// buffer is freed.
    public func write(
        at offset: UInt64, buffer: consuming FileBuffer, count: Int? = nil, sink: FileSink, tag: UInt64 = 0
    )
        throws(SedaError)
    {
        let n = count ?? buffer.count
        guard n > 0, n <= buffer.count else { throw .invalidArgument }
        let stage = buffer.stage
        let p = buffer.leak()
        let r = sink.withCSink(tag: tag) { s, user in seda_file_write_pooled(pointer, offset, p, n, s, user) }
        if r < 0 {
            seda_file_buffer_free(stage, p)
            throw SedaError(code: r)
        }
    }

    /// Flushes to the device everything written before whose completion was
    /// delivered: `fsync` (``FileOperation/flush``), or with `dataOnly`
    /// `fdatasync` (``FileOperation/flushData``). Requests in flight at the
    /// same time are not ordered with it.
    public func flush(dataOnly: Bool = false, sink: FileSink, tag: UInt64 = 0) throws(SedaError) {
        let r = sink.withCSink(tag: tag) { s, user in seda_file_sync(pointer, dataOnly ? 1 : 0, s, user) }
        _ = try SedaError.check(r)
    }

    /// Closes the file: later requests throw `.system(errno: EBADF)`; those
    /// accepted before and not yet in the kernel complete with
    /// `.system(errno: ECANCELED)`, those in the kernel complete or are
    /// cancelled. The ``FileOperation/close`` completion comes after every
    /// other completion of the file. Throws `.system(errno: EBADF)` when the
    /// file is closing already, ``SedaError/full`` (a queue is full: the file
    /// stays open, retry).
    public func close(sink: FileSink, tag: UInt64 = 0) throws(SedaError) {
        let r = sink.withCSink(tag: tag) { s, user in seda_file_close(pointer, s, user) }
        _ = try SedaError.check(r)
    }
}
