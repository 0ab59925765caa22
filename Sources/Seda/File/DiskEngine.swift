import CSedaCore

/// The engine a ``FileStage`` does its disk I/O with (`enum seda_disk_engine`
/// in `include/seda/file.h`).
///
/// - `ioUring`: one ring per file stage; requests are submitted once per
///   handler batch and completions reaped by the stage's home worker.
///   Buffered and `O_DIRECT` files alike.
/// - `libaio`: Linux AIO, asynchronous only with `O_DIRECT`: this engine opens
///   every file with `O_DIRECT` and takes aligned requests only
///   (``AsyncFile/alignment``). A file system that refuses `O_DIRECT` (tmpfs,
///   ramfs) gets a buffered file served by the thread pool, with a warning in
///   the log.
/// - `threads`: `pread`/`pwrite` on a pool stage of the runtime; works
///   everywhere.
///
/// An engine the kernel refuses falls back to the next one (io_uring, then
/// libaio, then threads) with a warning in the runtime's log;
/// ``FileStage/engine`` says which one runs.
public enum DiskEngine: Sendable, Equatable, CaseIterable {
    /// The `SEDA_DISK` environment variable's engine ("io_uring", "libaio",
    /// "threads"), else io_uring.
    case automatic
    case ioUring
    case libaio
    case threads

    var cValue: Int32 {
        switch self {
        case .automatic: Int32(SEDA_DISK_DEFAULT.rawValue)
        case .ioUring: Int32(SEDA_DISK_IO_URING.rawValue)
        case .libaio: Int32(SEDA_DISK_LIBAIO.rawValue)
        case .threads: Int32(SEDA_DISK_THREADS.rawValue)
        }
    }

    init?(cValue: Int32) {
        switch cValue {
        case Int32(SEDA_DISK_DEFAULT.rawValue): self = .automatic
        case Int32(SEDA_DISK_IO_URING.rawValue): self = .ioUring
        case Int32(SEDA_DISK_LIBAIO.rawValue): self = .libaio
        case Int32(SEDA_DISK_THREADS.rawValue): self = .threads
        default: return nil
        }
    }

    /// The engine a name designates, as the C core and `SEDA_DISK` spell
    /// them ("io_uring", "libaio", "threads", and "default" for
    /// ``automatic``), or nil.
    public init?(name: String) {
        let r = seda_disk_engine_parse(name)
        guard r >= 0, let e = DiskEngine(cValue: r) else { return nil }
        self = e
    }

    /// The engine's name as the C core spells it ("default" for ``automatic``).
    public var name: String { String(cString: seda_disk_engine_name(cValue)) }
}
