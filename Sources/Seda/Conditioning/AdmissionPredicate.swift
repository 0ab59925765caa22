/// Admission decided by a closure: the application's own policy ("refuse
/// uploads over 1 MB", "refuse anonymous requests while the queue is over
/// 100"). Named `AdmissionPredicate` rather than `Predicate`, which
/// Foundation takes.
///
/// Thread rules: `decide` runs on every enqueuing thread, at once; it must be
/// cheap and thread-safe, and must not enqueue into the same stage. It is
/// stateless as far as Seda knows, so ``undo(_:at:)`` does nothing: a
/// closure that counts what it admitted cannot learn that the queue refused
/// it (put a counting policy in its own ``AdmissionController`` instead).
public struct AdmissionPredicate<Event: AnyObject & Sendable>: AdmissionController {
    private let decide: @Sendable (Event, StageProbe) -> RejectionReason?

    /// `decide` returns `nil` to admit the event, or why it is refused.
    public init(_ decide: @escaping @Sendable (Event, StageProbe) -> RejectionReason?) {
        self.decide = decide
    }

    public func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        decide(event, stage)
    }
}
