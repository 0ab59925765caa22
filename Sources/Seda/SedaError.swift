import CSedaCore
import Glibc

/// An error from Seda. Every negative return code of the C core becomes one of
/// these cases through ``SedaError/check(_:)``, the one error path.
///
/// The C core's error table (`SEDA_ERRNO_MAP` in `seda/seda.h`) lists every
/// code it returns, with a message. A code the runtime gives a meaning to has
/// a case of its own; the rest, the I/O layer's (`ECONNREFUSED`, `EMFILE`,
/// `EIO`...), are ``system(errno:)``. Either way the description of an error
/// made from a code is the table's message for it: no code is "unknown".
public enum SedaError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The queue (or sink) is full: the event was not accepted and still
    /// belongs to the caller. C: `-EAGAIN` on enqueue.
    case full
    /// The stage's admission controller refused the event (it still belongs
    /// to the caller). Counted per stage and reason.
    case rejected(RejectionReason)
    /// The queue (or sink) is closed: no event is accepted any more, and a
    /// consumer has taken every event accepted before the close. C: `-EPIPE`.
    case closed
    /// An argument was out of range (a batch larger than the capacity, a
    /// capacity of 0). C: `-EINVAL`.
    case invalidArgument
    /// A timed wait expired. C: `-ETIMEDOUT`.
    case timedOut
    /// Memory could not be allocated. C: `-ENOMEM`.
    case outOfMemory
    /// A stage of that name exists already. C: `-EEXIST`.
    case alreadyExists
    /// The operation does not apply (resizing a stage on the shared thread
    /// manager). C: `-ENOTSUP`.
    case notSupported
    /// The call would wait for the calling thread itself (destroying a stage
    /// from its own handler, shutting down from a handler). C: `-EDEADLK`.
    case wouldDeadlock
    /// The shared thread manager's run queue cannot take more concurrency.
    /// C: `-ENOSPC`.
    case noCapacity
    /// Taken already, or in use at this instant (a timer being delivered).
    /// C: `-EBUSY`.
    case busy
    /// Not found (no such pending timer). C: `-ENOENT`.
    case notFound
    /// Done already (started before). C: `-EALREADY`.
    case alreadyDone
    /// No stage has that name.
    case noSuchStage(String)
    /// A stage of that name exists already in this runtime. C: `-EEXIST`.
    case stageExists(String)
    /// More events in one all-or-nothing enqueue than the queue can ever
    /// hold (its capacity). C: `-EINVAL`.
    case batchTooLarge(count: Int, capacity: Int)
    /// The stage has a watcher already (``Runtime/watch(stage:notify:)``
    /// takes one per stage). C: `-EBUSY`.
    case stageAlreadyWatched(String)
    /// The stage exists but carries another event type.
    case eventTypeMismatch(stage: String, expected: String, actual: String)
    /// A configuration key or value is wrong; the message names it.
    case invalidConfiguration(String)
    /// Any other errno value from the core: the I/O layer's (`ECONNRESET`,
    /// `EMFILE`, `EIO`...), described by the C core's error table.
    case system(errno: Int32)

    /// Maps a negative C return code (or a positive errno) to a case.
    public init(code: Int32) {
        // Int32.min has no positive counterpart (abs would trap).
        let errno = code == .min ? .max : abs(code)
        switch errno {
        case EAGAIN: self = .full
        case EPIPE: self = .closed
        case EINVAL: self = .invalidArgument
        case ETIMEDOUT: self = .timedOut
        case ENOMEM: self = .outOfMemory
        case EEXIST: self = .alreadyExists
        case ENOTSUP: self = .notSupported
        case EDEADLK: self = .wouldDeadlock
        case ENOSPC: self = .noCapacity
        case EBUSY: self = .busy
        case ENOENT: self = .notFound
        case EALREADY: self = .alreadyDone
        default: self = .system(errno: errno)
        }
    }

    /// The negative errno value the C core uses for this error.
    public var code: Int32 {
        switch self {
        case .full: -EAGAIN
        case .closed: -EPIPE
        case .invalidArgument: -EINVAL
        case .timedOut: -ETIMEDOUT
        case .outOfMemory: -ENOMEM
        case .alreadyExists: -EEXIST
        case .notSupported: -ENOTSUP
        case .wouldDeadlock: -EDEADLK
        case .noCapacity: -ENOSPC
        case .busy: -EBUSY
        case .notFound: -ENOENT
        case .alreadyDone: -EALREADY
        case .noSuchStage: -ENOENT
        case .stageAlreadyWatched: -EBUSY
        case .stageExists: -EEXIST
        case .batchTooLarge: -EINVAL
        case .eventTypeMismatch, .invalidConfiguration: -EINVAL
        case .rejected: -EAGAIN
        case .system(let errno): -errno
        }
    }

    public var description: String {
        switch self {
        case .full, .closed, .invalidArgument, .timedOut, .outOfMemory, .alreadyExists, .notSupported,
            .wouldDeadlock, .noCapacity, .busy, .notFound, .alreadyDone:
            String(cString: seda_strerror(code))
        case .system(let errno):
            // In the table: its message; otherwise the C library's.
            String(cString: seda_err_name(errno)) == "UNKNOWN"
                ? "system error \(errno) (\(String(cString: seda_strerror(errno))))"
                : String(cString: seda_strerror(errno))
        case .rejected(let reason): "rejected (\(reason))"
        case .noSuchStage(let name): "no stage named '\(name)'"
        case .stageExists(let name): "a stage named '\(name)' exists already"
        case .stageAlreadyWatched(let name): "stage '\(name)' has a watcher already (one per stage)"
        case .batchTooLarge(let count, let capacity):
            "\(count) events at once is more than the queue's capacity of \(capacity)"
        case .eventTypeMismatch(let stage, let expected, let actual):
            "stage '\(stage)' takes \(actual), not \(expected)"
        case .invalidConfiguration(let message): "invalid configuration: \(message)"
        }
    }

    /// Returns `result` when it is not negative, and throws the matching
    /// error when it is. Use it around every call into the C core.
    @inline(__always)
    public static func check(_ result: Int32) throws(SedaError) -> Int32 {
        if result < 0 { throw SedaError(code: result) }
        return result
    }
}
