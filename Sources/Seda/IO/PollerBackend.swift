import CSedaCore

/// The poller a runtime's shared threads wait in: how their sockets are
/// watched (`include/seda/poller.h`).
///
/// `select` and `poll` are level-triggered and cost O(registered descriptors)
/// per wait; `epoll` and `ioUring` are edge-triggered and cost what is ready.
/// With `ioUring` the socket layer also receives and sends through the ring
/// (multishot receive into provided buffers, one send per connection in
/// flight). When the kernel refuses io_uring, the runtime falls back to epoll
/// and logs a warning.
public enum PollerBackend: Sendable, Equatable, CaseIterable {
    /// The `SEDA_POLLER` environment variable's backend, else the built-in
    /// default (``Runtime/pollerDescription`` says which was taken).
    case `default`
    case select
    case poll
    case epoll
    case ioUring

    var cValue: Int32 {
        switch self {
        case .default: Int32(SEDA_POLLER_DEFAULT.rawValue)
        case .select: Int32(SEDA_POLLER_SELECT.rawValue)
        case .poll: Int32(SEDA_POLLER_POLL.rawValue)
        case .epoll: Int32(SEDA_POLLER_EPOLL.rawValue)
        case .ioUring: Int32(SEDA_POLLER_IO_URING.rawValue)
        }
    }

    /// The backend a name designates ("select", "poll", "epoll", "io_uring",
    /// "default"; case-insensitive), or nil.
    public init?(name: String) {
        switch seda_poller_backend_parse(name) {
        case Int32(SEDA_POLLER_DEFAULT.rawValue): self = .default
        case Int32(SEDA_POLLER_SELECT.rawValue): self = .select
        case Int32(SEDA_POLLER_POLL.rawValue): self = .poll
        case Int32(SEDA_POLLER_EPOLL.rawValue): self = .epoll
        case Int32(SEDA_POLLER_IO_URING.rawValue): self = .ioUring
        default: return nil
        }
    }

    /// The backend's name as the C core spells it.
    public var name: String { String(cString: seda_poller_backend_name(cValue)) }
}

extension Runtime {
    /// The backend the shared threads' loops run (after an io_uring
    /// fallback, `.epoll`).
    public var poller: PollerBackend {
        PollerBackend(name: String(cString: seda_poller_backend_name(seda_runtime_poller(handle)))) ?? .default
    }

    /// A one-line description of the poller, e.g. "epoll (edge)".
    public var pollerDescription: String { String(cString: seda_runtime_poller_describe(handle)) }
}

extension Runtime {
    /// The index of the shared thread calling (0..<``cpuThreads``), or nil
    /// on any other thread (a dedicated pool, an outside thread). A
    /// connection's handler in a stage replicated per thread runs on
    /// ``Connection/thread``.
    public var currentThread: Int? {
        let i = seda_runtime_thread_index(handle)
        return i >= 0 ? Int(i) : nil
    }
}
