import Seda

/// Everything the configuration says about one stage.
public struct StageConfiguration: Sendable, Equatable {
    public var name: String
    /// What `Runtime/addStage(_:handler:options:)` takes.
    public var options: StageOptions
    /// Read by `ThreadGovernor/init(runtime:configuration:)`; meaningful for dedicated stages.
    public var governor: GovernorSettings
    /// Read by `BatchController/init(runtime:configuration:)`.
    public var batchController: BatchControllerSettings
    /// Installed by `Runtime/addStage(_:handler:configuration:defaults:)` when enabled.
    public var responseTimeController: ResponseTimeControllerSettings
    /// Installed by `Runtime/addStage(_:handler:configuration:defaults:)`.
    public var admission: AdmissionSettings
}

/// Admission policies from configuration (`admission.*`): a queue-length
/// threshold and a token-bucket rate limit. With the response-time
/// controller (`rtController.*`), they make the stage's `AdmissionChain`.
public struct AdmissionSettings: Sendable, Equatable {
    /// `admission.threshold`: refuse while the queue holds this many.
    public var threshold: Int? = nil
    /// `admission.rateLimit`: events per second.
    public var rateLimit: Double? = nil
    /// `admission.burst`: the bucket's depth (default: a tenth of a second's worth, at least 1).
    public var burst: Int? = nil

    public init() {}

    /// The policies these settings and `rt` describe, in order, or none.
    func policies<Event: AnyObject & Sendable>(_ rt: ResponseTimeControllerSettings) throws(SedaError)
        -> [any AdmissionController<Event>]
    {
        var out: [any AdmissionController<Event>] = []
        if let threshold { out.append(QueueThreshold<Event>(threshold)) }
        if let rateLimit {
            out.append(TokenBucket<Event>(rate: rateLimit, burst: burst ?? max(1, Int(rateLimit / 10))))
        }
        if rt.enabled, let options = try ResponseTimeControllerOptions(rt) {
            out.append(ResponseTimeController<Event>(options))
        }
        return out
    }
}

/// The response-time controller's settings (Sandstorm's `rtController.*`).
/// Accepted and validated; the controllers issue will use them.
public struct ResponseTimeControllerSettings: Sendable, Equatable {
    public var enabled = false
    public var type: ResponseTimeControllerKind = .direct
    /// Required when `enabled`.
    public var targetResponseTime: Duration? = nil

    public init() {}
}
