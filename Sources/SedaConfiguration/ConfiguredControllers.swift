import Logging
import Seda

extension ThreadGovernor {
    /// A governor for every dedicated stage of `runtime` whose configuration
    /// enables it (`threadPool.sizeController.enable`), each with its own
    /// resolved settings; the interval and `autoMaxDetect` come from
    /// `seda.global.threadPool.sizeController`. Stages added later are
    /// governed by calling `govern(_:settings:)` with
    /// `configuration.settings(forStage:).governor`.
    public convenience init(
        runtime: Runtime, configuration: SedaConfiguration,
        logger: Logger? = nil, historyLimit: Int = 256
    ) throws(SedaError) {
        var enabled: [(String, GovernorSettings)] = []
        var global: GovernorSettings?
        for name in runtime.stageNames {
            guard let options = runtime.registeredOptions(name) else { continue }
            let g = try configuration.settings(forStage: name, defaults: options).governor
            global = global ?? g
            if g.enabled, case .dedicated = options.threadManager { enabled.append((name, g)) }
        }
        // delay and autoMaxDetect are runtime-wide keys: any stage's
        // resolution has them; with no stage, resolve an unconfigured name.
        let runtimeWide: GovernorSettings
        if let global {
            runtimeWide = global
        } else {
            runtimeWide = try configuration.settings(forStage: "seda-governor").governor
        }
        var settings = GovernorSettings()
        settings.delay = runtimeWide.delay
        settings.autoMaxDetect = runtimeWide.autoMaxDetect
        try self.init(runtime: runtime, settings: settings, logger: logger, historyLimit: historyLimit)
        for (name, g) in enabled { try govern(name, settings: g) }
    }
}

extension BatchController {
    /// A controller for every stage of `runtime` whose configuration enables
    /// it (`batchController.enable`), each with its resolved settings
    /// (`maxBatch` is the stage's `batchSize`). It ticks at the shortest
    /// `recalcWindow` among them (1 s if none).
    public convenience init(
        runtime: Runtime, configuration: SedaConfiguration,
        logger: Logger? = nil, historyLimit: Int = 256
    ) throws(SedaError) {
        var enabled: [(String, BatchControllerSettings)] = []
        for name in runtime.stageNames {
            guard let options = runtime.registeredOptions(name) else { continue }
            let b = try configuration.settings(forStage: name, defaults: options).batchController
            if b.enabled { enabled.append((name, b)) }
        }
        let shortest = enabled.map(\.1.recalcWindow).min() ?? .seconds(1)
        try self.init(runtime: runtime, interval: shortest, logger: logger, historyLimit: historyLimit)
        for (name, b) in enabled { try control(name, settings: b) }
    }
}

extension ResponseTimeControllerOptions {
    /// The options ``ResponseTimeControllerSettings`` describe (the
    /// configuration's `rtController.*`), or `nil` when it is not enabled.
    /// `"direct"` is this controller; throws `SedaError/invalidConfiguration(_:)`
    /// for the types Seda does not implement (`"pid"`, `"mm1"`).
    public init?(_ settings: ResponseTimeControllerSettings) throws(SedaError) {
        guard settings.enabled else { return nil }
        guard settings.type == .direct else {
            throw .invalidConfiguration(
                "rtController.type \"\(settings.type.rawValue)\" is not implemented; use \"direct\"")
        }
        guard let target = settings.targetResponseTime else {
            throw .invalidConfiguration("rtController.enable is true but rtController.targetResponseTime is not set")
        }
        self.init(target: target)
    }
}
