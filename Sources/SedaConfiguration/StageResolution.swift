import Seda

/// Resolving one stage's settings through the layers, and checking that
/// every configured stage exists.
extension SedaConfiguration {
    /// Everything the configuration says about stage `name`: its options and
    /// its controllers' settings (which nothing uses yet).
    public func settings(forStage name: String, defaults: StageOptions = StageOptions()) throws(SedaError)
        -> StageConfiguration
    {
        try Keys.checkStageName(name, key: "stage name")
        let s = Keys.stagePrefix(name), g = Keys.globalPrefix
        let stageKey = { (spec: KeySpec) in (s + spec.components).joined(separator: ".") }

        /// A value from the stage's section, else the global one.
        func pick(_ spec: KeySpec) throws(SedaError) -> Setting? {
            if let v = try Self.read(spec, at: s, reader, layers) { return v }
            guard let globalSpec = Keys.global.first(where: { $0.name == spec.name }) else { return nil }
            return try Self.read(globalSpec, at: g, reader, layers)
        }
        func stageOnly(_ spec: KeySpec) throws(SedaError) -> Setting? {
            try Self.read(spec, at: s, reader, layers)
        }

        var options = defaults
        let defaultKind: ThreadManagerKind
        switch defaults.threadManager {
        case .shared: defaultKind = .shared
        case .dedicated: defaultKind = .dedicated
        }
        let managerSetting = try pick(Keys.threadManager)
        let kind = managerSetting.map { ThreadManagerKind(rawValue: $0.string)! } ?? defaultKind
        let managerOrigin = managerSetting?.origin ?? "the defaults passed in code"

        /// A stage-level key that the stage's thread manager has no use for.
        func misplaced(_ spec: KeySpec) throws(SedaError) {
            guard let v = try stageOnly(spec) else { return }
            throw .invalidConfiguration(
                "\(v.origin): \(spec.name) applies to \(kind == .shared ? "dedicated" : "shared") stages, "
                    + "and stage '\(name)' uses the \(kind.rawValue) thread manager (\(managerOrigin)); "
                    + "set \(stageKey(Keys.threadManager)) or remove \(spec.name)")
        }

        switch kind {
        case .shared:
            for spec in Keys.dedicatedOnly { try misplaced(spec) }
            var concurrency = 1
            if case .shared(let c) = defaults.threadManager { concurrency = c }
            if let v = try pick(Keys.concurrency) { concurrency = v.int }
            options.threadManager = .shared(concurrency: concurrency)
        case .dedicated:
            try misplaced(Keys.concurrency)
            var threads = 1, maxThreads: Int? = nil
            var threadsOrigin = "threads \(threads) (the default)", maxOrigin = ""
            if case .dedicated(let t, let m) = defaults.threadManager {
                threads = t
                maxThreads = m
                threadsOrigin = "threads \(t) (the defaults passed in code)"
                if let m { maxOrigin = "maxThreads \(m) (the defaults passed in code)" }
            }
            if let v = try pick(Keys.threads) {
                threads = v.int
                threadsOrigin = v.origin
            }
            if let v = try pick(Keys.maxThreads) {
                maxThreads = v.int
                maxOrigin = v.origin
            }
            if let m = maxThreads, m < threads {
                throw .invalidConfiguration(
                    "stage '\(name)': \(maxOrigin) is below \(threadsOrigin): "
                        + "expected maxThreads ≥ threads; set \(stageKey(Keys.maxThreads))")
            }
            options.threadManager = .dedicated(threads: threads, maxThreads: maxThreads)
            if let v = try stageOnly(Keys.pinCPU) { options.pinCPU = v.int }
        }
        if let v = try pick(Keys.batchSize) { options.batchSize = v.int }
        if let v = try pick(Keys.queueCapacity) { options.queueCapacity = v.int }

        // The controllers' settings: validated here, read by the controllers.
        var governor = GovernorSettings()
        if let v = try pick(Keys.sizeControllerEnable) { governor.enabled = v.bool }
        if let v = try pick(Keys.sizeControllerThreshold) { governor.threshold = v.int }
        if let v = try pick(Keys.idleTimeThreshold) { governor.idleTimeThreshold = .milliseconds(v.int) }
        if let v = try Self.read(Keys.sizeControllerDelay, at: g, reader, layers) {
            governor.delay = .milliseconds(v.int)
        }
        if let v = try Self.read(Keys.autoMaxDetect, at: g, reader, layers) { governor.autoMaxDetect = v.bool }
        if let v = try pick(Keys.minThreads) {
            governor.minThreads = v.int
            if case .dedicated(let t, _) = options.threadManager, v.int > t {
                throw .invalidConfiguration(
                    "stage '\(name)': \(v.origin) is above its threads \(t): expected minThreads ≤ threads")
            }
        }

        var batch = BatchControllerSettings(maxBatch: options.batchSize)
        if let v = try pick(Keys.batchControllerEnable) { batch.enabled = v.bool }
        if let v = try pick(Keys.recalcWindow) { batch.recalcWindow = .milliseconds(v.int) }
        if let v = try pick(Keys.smoothConst) { batch.smoothConst = v.double }
        if let v = try pick(Keys.minBatch) {
            batch.minBatch = v.int
            if v.int > options.batchSize {
                throw .invalidConfiguration(
                    "stage '\(name)': \(v.origin) is above its batchSize \(options.batchSize): "
                        + "expected minBatch ≤ batchSize")
            }
        }

        var rt = ResponseTimeControllerSettings()
        if let v = try pick(Keys.rtControllerType) { rt.type = ResponseTimeControllerKind(rawValue: v.string)! }
        if let v = try pick(Keys.targetResponseTime) { rt.targetResponseTime = .milliseconds(v.double) }
        if let v = try pick(Keys.rtControllerEnable) {
            rt.enabled = v.bool
            if v.bool, rt.targetResponseTime == nil {
                throw .invalidConfiguration(
                    "\(v.origin), but stage '\(name)' has no target: "
                        + "set \(stageKey(Keys.targetResponseTime)) or seda.global.\(Keys.targetResponseTime.name) "
                        + "(\(Keys.targetResponseTime.kind.expected))")
            }
        }

        var admission = AdmissionSettings()
        if let v = try pick(Keys.admissionThreshold) { admission.threshold = v.int }
        if let v = try pick(Keys.admissionRate) { admission.rateLimit = v.double }
        if let v = try pick(Keys.admissionBurst) {
            guard admission.rateLimit != nil else {
                throw .invalidConfiguration(
                    "\(v.origin), but stage '\(name)' has no rate limit: "
                        + "set \(stageKey(Keys.admissionRate)) too")
            }
            admission.burst = v.int
        }

        if let v = try pick(Keys.priorityClasses) { options.priorityClasses = v.int }
        let codel = try pick(Keys.discipline).map { $0.string == "codel" } ?? false
        let codelTarget = try pick(Keys.codelTarget), codelInterval = try pick(Keys.codelInterval)
        if codel {
            options.discipline = .codel(
                target: .milliseconds(codelTarget?.double ?? 5),
                interval: .milliseconds(codelInterval?.double ?? 100))
        } else if let v = codelTarget ?? codelInterval {
            throw .invalidConfiguration(
                "\(v.origin), but stage '\(name)' does not use CoDel: "
                    + "set \(stageKey(Keys.discipline)) to \"codel\" too")
        }

        try options.validate(stage: name)
        return StageConfiguration(
            name: name, options: options, governor: governor,
            batchController: batch, responseTimeController: rt, admission: admission)
    }

    /// Throws if the configuration configures a stage not in `names` (a
    /// misspelt stage name would otherwise be ignored). Call it once every
    /// stage is added: `Runtime/checkConfiguredStages(_:)`.
    public func checkStagesExist(_ names: some Sequence<String>) throws(SedaError) {
        let names = Set(names)
        let list = names.sorted().map { "'\($0)'" }.joined(separator: ", ")
        for name in stageNames where !names.contains(name) {
            let whereSet =
                layers.first { layer in
                    layer.raw.keys.contains { $0.hasPrefix("seda.stages.\(name).") }
                }?.source.label ?? "code"
            throw .invalidConfiguration(
                "seda.stages.\(name) (\(whereSet)) configures a stage the runtime does not have; its stages are \(list)"
            )
        }
        guard let env = layers.first(where: { $0.source == .environment }) else { return }
        let encoded = Set(names.map { Keys.environmentStagePart(of: $0, env) })
        for variable in environmentStageVariables where !variable.stageParts.contains(where: encoded.contains) {
            throw .invalidConfiguration(
                "environment variable \(variable.name) configures a stage the runtime does not have; its stages are \(list)"
            )
        }
    }
}
