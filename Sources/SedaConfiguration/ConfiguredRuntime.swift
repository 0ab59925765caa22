import Logging
import Seda

extension Runtime {
    /// Creates a runtime with `seda.cpuThreads`, `seda.pinThreads` and
    /// `seda.poller` from `configuration`; `poller`, when given, wins over
    /// the configuration's (see "Poller and disk engine: who wins" in
    /// ``SedaConfiguration``).
    public convenience init(
        configuration: SedaConfiguration, clock: SedaClock = .monotonic,
        logger: Logger = Logger(label: "seda"), poller: PollerBackend? = nil
    ) throws(SedaError) {
        try self.init(
            cpuThreads: configuration.cpuThreads, pinThreads: configuration.pinThreads,
            clock: clock, logger: logger, poller: poller ?? configuration.poller ?? .default)
    }

    /// Adds a stage whose options come from `configuration` (see
    /// ``SedaConfiguration/options(forStage:defaults:)``), with `defaults`
    /// for whatever it does not set. Its controller settings are checked
    /// too; the controllers read them when built from the configuration
    /// (`ThreadGovernor/init(runtime:configuration:)`,
    /// `BatchController/init(runtime:configuration:)`).
    @discardableResult
    public func addStage<H: EventHandler>(
        _ name: String, handler: H, configuration: SedaConfiguration,
        defaults: StageOptions = StageOptions()
    ) throws -> Sink<H.Event> {
        let settings = try configuration.settings(forStage: name, defaults: defaults)
        let policies: [any AdmissionController<H.Event>] =
            try settings.admission.policies(settings.responseTimeController)
        let admission: (any AdmissionController<H.Event>)? =
            policies.isEmpty
            ? nil
            : policies.count == 1 ? policies[0] : AdmissionChain<H.Event>(policies)
        return try addStage(name, handler: handler, options: settings.options, admission: admission)
    }

    /// Throws if `configuration` configures a stage this runtime does not
    /// have. Call it once every stage is added.
    public func checkConfiguredStages(_ configuration: SedaConfiguration) throws(SedaError) {
        try configuration.checkStagesExist(stageNames)
    }
}
