import CSedaCore
import Glibc

/// An error from Seda. Every negative return code of the C core becomes one of
/// these cases through ``SedaError/check(_:)``, the one error path.
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
    /// No stage has that name.
    case noSuchStage(String)
    /// A stage of that name exists already in this runtime. C: `-EEXIST`.
    case stageExists(String)
    /// More events in one all-or-nothing enqueue than the queue can ever
    /// hold (its capacity). C: `-EINVAL`.
    case batchTooLarge(count: Int, capacity: Int)
    /// The stage exists but carries another event type.
    case eventTypeMismatch(stage: String, expected: String, actual: String)
    /// A configuration key or value is wrong; the message names it.
    case invalidConfiguration(String)
    /// Any other errno value from the core.
    case system(errno: Int32)

    /// Maps a negative C return code (or a positive errno) to a case.
    public init(code: Int32) {
        switch abs(code) {
        case EAGAIN: self = .full
        case EPIPE: self = .closed
        case EINVAL: self = .invalidArgument
        case ETIMEDOUT: self = .timedOut
        case ENOMEM: self = .outOfMemory
        case EEXIST: self = .alreadyExists
        case ENOTSUP: self = .notSupported
        case EDEADLK: self = .wouldDeadlock
        case ENOSPC: self = .noCapacity
        default: self = .system(errno: abs(code))
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
        case .noSuchStage: -ENOENT
        case .stageExists: -EEXIST
        case .batchTooLarge: -EINVAL
        case .eventTypeMismatch, .invalidConfiguration: -EINVAL
        case .rejected: -EAGAIN
        case .system(let errno): -errno
        }
    }

    public var description: String {
        switch self {
        case .full: "full"
        case .rejected(let reason): "rejected (\(reason))"
        case .closed: "closed"
        case .invalidArgument: "invalid argument"
        case .timedOut: "timed out"
        case .outOfMemory: "out of memory"
        case .alreadyExists: "already exists"
        case .notSupported: "not supported"
        case .wouldDeadlock:
            "would deadlock: the call must wait for a thread it may be running on (a handler on the shared "
                + "threads must not wait for room in a queue; a stage cannot be destroyed from its own handler)"
        case .noCapacity: "no capacity left on the shared thread manager"
        case .noSuchStage(let name): "no stage named '\(name)'"
        case .stageExists(let name): "a stage named '\(name)' exists already"
        case .batchTooLarge(let count, let capacity):
            "\(count) events at once is more than the queue's capacity of \(capacity)"
        case .eventTypeMismatch(let stage, let expected, let actual):
            "stage '\(stage)' takes \(actual), not \(expected)"
        case .invalidConfiguration(let message): "invalid configuration: \(message)"
        case .system(let errno): "system error \(errno) (\(String(cString: seda_strerror(-errno))))"
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
