/// Several admission policies applied in order: an event is admitted only if
/// every one admits it. The first refusal wins: the policies after it are
/// not asked, and those before it, which admitted the event, are undone (in
/// reverse order) so that a token bucket early in the chain gets its token
/// back when a threshold later refuses.
///
/// Thread rules: those of its policies; the chain adds no state.
public struct AdmissionChain<Event: AnyObject & Sendable>: AdmissionController, ReportsResponseTime {
    /// The policies, asked in this order.
    public let policies: [any AdmissionController<Event>]

    public init(_ policies: [any AdmissionController<Event>]) {
        self.policies = policies
    }

    public init(_ policies: any AdmissionController<Event>...) {
        self.policies = policies
    }

    public func admit(_ event: Event, to stage: StageProbe) -> RejectionReason? {
        for (i, policy) in policies.enumerated() {
            if let reason = policy.admit(event, to: stage) {
                for earlier in policies[..<i].reversed() { earlier.undo(event, at: stage) }
                return reason
            }
        }
        return nil
    }

    /// The queue refused an event every policy admitted: undo them all.
    public func undo(_ event: Event, at stage: StageProbe) {
        for policy in policies.reversed() { policy.undo(event, at: stage) }
    }

    /// The first response-time controller's state among the policies.
    var responseTimeState: ResponseTimeControllerState? {
        for policy in policies {
            if let s = (policy as? any ReportsResponseTime)?.responseTimeState { return s }
        }
        return nil
    }

    /// The event left the queue: every policy admitted it, so tell them all
    /// (a ByteLimit in the chain releases its bytes).
    public func left(_ event: Event) {
        for policy in policies { policy.left(event) }
    }
}
