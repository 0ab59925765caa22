/// Refuses an event while the stage's queue holds `threshold` events or more:
/// Sandstorm's `queueThreshold` admission policy, a bound on the queueing
/// delay of a stage whose service time is steady.
///
/// Thread rules: any thread may call ``admit(_:to:)`` at once; the policy has
/// no state of its own. Each call reads the queue's length (``StageProbe/queueLength``),
/// so the bound is exact for one producer and approximate under several
/// (two producers may both see `threshold - 1` and both enqueue).
public struct QueueThreshold<Event: AnyObject & Sendable>: AdmissionController {
    /// Queue length at which events are refused.
    public let threshold: Int

    /// `threshold` must be at least 1 (0 would refuse everything).
    public init(_ threshold: Int) {
        precondition(threshold >= 1, "QueueThreshold(\(threshold)): the threshold must be at least 1")
        self.threshold = threshold
    }

    public func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        stage.queueLength >= threshold ? .queueThreshold : nil
    }
}
