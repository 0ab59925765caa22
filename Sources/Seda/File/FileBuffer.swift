import CSedaCore

/// A buffer from a ``FileStage``'s aligned pool (its address a multiple of
/// 4096, so it suits `O_DIRECT` files), owned by this value: freed back to
/// the pool when it goes out of scope, or handed to a request
/// (``AsyncFile/read(at:into:count:sink:tag:)``,
/// ``AsyncFile/write(at:buffer:count:sink:tag:)``) that passes it on to its
/// completion event, from which ``TakenFileEvent/takeBuffer()`` takes it back.
/// A buffer so travels from request to handler to the next request without a
/// copy or an allocation.
///
/// Thread rules: one owner at a time (it is `~Copyable`); it may move to and
/// be freed on any thread, also after its stage was destroyed (it keeps the
/// stage's memory).
public struct FileBuffer: ~Copyable, @unchecked Sendable {
    // @unchecked: the pool takes buffers back from any thread.
    @usableFromInline let base: UnsafeMutableRawPointer
    /// Bytes usable.
    public let count: Int
    @usableFromInline let stage: OpaquePointer

    init(adopting base: UnsafeMutableRawPointer, count: Int, stage: OpaquePointer) {
        self.base = base
        self.count = count
        self.stage = stage
    }

    deinit { seda_file_buffer_free(stage, base) }

    /// The buffer's bytes, to fill before a write or read after a read.
    @inlinable public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: count)
    }

    /// Hands the pointer over without freeing it.
    consuming func leak() -> UnsafeMutableRawPointer {
        let p = base
        discard self
        return p
    }
}
