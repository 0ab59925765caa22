#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Configuration
import Logging
import Seda

// MARK: - The configuration

/// The runtime's and the stages' settings, read from three layers through
/// swift-configuration's `ConfigReader`: the **environment** overrides the
/// **file**, which overrides **code** (``SedaSettings``); anything none of them
/// sets falls back to the `defaults` passed for a stage, then to the built-in
/// defaults. Sandstorm's `sandstorm.cfg` keys are kept where they still make
/// sense: its `global.` and `stages.<name>.` sections live under `seda.`.
///
/// Reading is strict. An unknown key under `seda.` in the file or in code, an
/// unknown `SEDA_…` environment variable, a value of the wrong type or out of
/// range, or a key and its Sandstorm alias set together in one layer throws
/// ``SedaError/invalidConfiguration(_:)`` naming the full key, the bad value
/// and what was expected. Everything in the file, in code and in the
/// environment is checked when the configuration is created; a stage's
/// cross-key checks (such as `threads` on a shared stage) run when its
/// settings are resolved, in ``settings(forStage:defaults:)`` (that is, in
/// ``Runtime/addStage(_:handler:configuration:defaults:)``).
///
/// ## Keys
///
/// `S` is `seda.global.` (a default for every stage, Sandstorm's `global.`)
/// or `seda.stages.<name>.` (one stage). A stage key resolves stage first,
/// then global, each through every layer; then the `defaults` passed in code.
///
/// | Key | Type, range | Default | Sandstorm alias | Meaning |
/// |-----|-------------|---------|-----------------|---------|
/// | `seda.cpuThreads` | int 1...1024 | one per CPU | – | threads of the shared thread manager |
/// | `seda.pinThreads` | bool | false | – | pin shared thread *i* to CPU *i* |
/// | `S threadManager` | `"shared"`, `"dedicated"` (case-insensitive; `"TPPTM"` = shared, `"TPSTM"` = dedicated) | shared | `seda.global.defaultThreadManager` | ``ThreadManager`` |
/// | `S concurrency` | int 1...1024 | 1 | – | shared stages only: handler calls at once |
/// | `S threads` | int 1...1024 | 1 | `S threadPool.initialThreads` | dedicated stages only: pool threads to start |
/// | `S maxThreads` | int 1...1024, ≥ threads | threads | `S threadPool.maxThreads` | dedicated stages only: pool limit |
/// | `S batchSize` | int 1...1024 | 64 | `S batchController.maxBatch` | events per handler call, at most |
/// | `S queueCapacity` | int 1...2^30 | 1024 | `S queueThreshold` | queue capacity (rounded up to a power of two) |
/// | `seda.stages.<name>.pinCPU` | int 0...1023 | none | – | dedicated stages only: pin the pool to a CPU |
/// | `S threadPool.minThreads` | int 1...1024, ≤ threads | 1 | – | governor †: shrink no further |
/// | `S threadPool.sizeController.enable` | bool | false | – | governor †: on |
/// | `S threadPool.sizeController.threshold` | int 1...2^30 | 1000 | – | governor †: queue length that adds a thread |
/// | `S threadPool.sizeController.idleTimeThreshold` | int ms ≥ 1 | 1000 | – | governor †: idle time that removes a thread |
/// | `seda.global.threadPool.sizeController.delay` | int ms ≥ 1 | 2000 | – | governor †: sampling interval |
/// | `seda.global.threadPool.sizeController.autoMaxDetect` | bool | false | – | governor †: look for the best pool size |
/// | `S batchController.enable` | bool | false | – | batch controller †: on |
/// | `S batchController.minBatch` | int 1...1024, ≤ batchSize | 1 | – | batch controller †: lower bound (the upper is batchSize) |
/// | `S batchController.recalcWindow` | int ms ≥ 1 | 1000 | – | batch controller †: measuring window |
/// | `S batchController.smoothConst` | number in [0, 1) | 0.7 | – | batch controller †: smoothing weight of the old value |
/// | `S rtController.enable` | bool | false | – | response-time controller †: on (needs a target) |
/// | `S rtController.type` | `"direct"`, `"pid"`, `"mm1"` | direct | – | response-time controller †: algorithm |
/// | `S rtController.targetResponseTime` | number ms > 0 | none | – | response-time controller †: target |
/// | `S admission.threshold` | int 1...2^30 | none | – | admission: refuse while the queue holds this many |
/// | `S admission.rateLimit` | number > 0 | none | – | admission: token bucket, events/s |
/// | `S admission.burst` | int ≥ 1 | rate/10 | – | admission: the bucket's depth (needs rateLimit) |
/// | `S discipline` | `"fifo"`, `"codel"` | fifo | – | queue discipline under overload |
/// | `S codel.target`, `S codel.interval` | number ms > 0 | 5, 100 | – | CoDel's target and interval |
/// | `S priorityClasses` | int 1...8 | 1 | – | strict priority classes |
/// | `seda.global.profile.enable` | bool | false | – | profiler †: on |
/// | `seda.global.profile.delay` | int ms ≥ 1 | 1000 | – | profiler †: sampling interval |
///
/// † Validated into ``GovernorSettings``, ``BatchControllerSettings``,
/// ``ResponseTimeControllerSettings`` and ``ProfileSettings``, which the
/// controllers read: ``ThreadGovernor/init(runtime:configuration:)``,
/// ``BatchController/init(runtime:configuration:)`` and
/// ``ResponseTimeControllerOptions``'s settings initialiser. Adding a stage
/// with a configuration does not start them: build them from it.
///
/// Sandstorm keys Seda has no use for (`threadPool.blockTime`, `class`,
/// `initargs`, `crashOnException`, `aSocket`, `aDisk`, `TPPTM`, `AggTPSTM`,
/// `profile.filename`, …) are rejected with the reason.
///
/// ## The file
///
/// A JSON object; only its `seda` member is read, so it can be an
/// application's own configuration file. Nested objects and dotted member
/// names are the same key (`{"seda": {"global": {"threadPool.maxThreads": 8}}}`).
/// `null` means unset. Stage names used with a configuration can't contain `.`.
///
/// ```json
/// { "seda": { "cpuThreads": 4,
///             "global": { "queueCapacity": 4096 },
///             "stages": { "HttpServer": { "threadManager": "dedicated", "threads": 8 } } } }
/// ```
///
/// ## The environment
///
/// swift-configuration's naming: components joined by `_`, upper case, a
/// camel-case boundary becomes `_`. `seda.stages.HttpServer.queueCapacity` is
/// `SEDA_STAGES_HTTP_SERVER_QUEUE_CAPACITY`; `seda.cpuThreads` is
/// `SEDA_CPU_THREADS`. Booleans accept `true`/`false`/`yes`/`no`/`1`/`0`.
/// Every variable starting `SEDA_` must be one of these keys. Two stage names
/// that differ only in case or camel-case boundaries share their variables.
///
/// Thread rules: immutable once created; every method may be called from any thread.
public struct SedaConfiguration: Sendable {
    /// Threads of the shared thread manager (`nil`: one per CPU).
    public let cpuThreads: Int?
    /// Pin shared thread *i* to CPU *i*.
    public let pinThreads: Bool
    /// The profiler's settings (not used yet: see the key table).
    public let profile: ProfileSettings
    /// The stages named in the file and in code, sorted. Stages named only
    /// in the environment are not listed: their variable names lose case.
    public let stageNames: [String]

    private let reader: ConfigReader
    private let layers: [Layer]
    /// Each `SEDA_STAGES_…` variable with the stage-name parts it can mean.
    private let environmentStageVariables: [(name: String, stageParts: [String])]

    /// Reads the configuration: `code`, overridden by the JSON `file` (when
    /// given), overridden by the `SEDA_…` variables of `environment`, and
    /// checks every key and value they set.
    /// - Parameters:
    ///   - code: the settings made in code, the lowest layer.
    ///   - file: a JSON configuration file; `nil` for none. A missing or
    ///     malformed file is an error.
    ///   - environment: the environment to read (pass a dictionary in tests).
    public init(code: SedaSettings = SedaSettings(), file: String? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws(SedaError) {
        var layers: [Layer] = []

        // The environment: only SEDA_ variables are kept, and each must be a key.
        let seda = environment.filter { $0.key.hasPrefix(Keys.environmentPrefix) }
        let envProvider = EnvironmentVariablesProvider(environmentVariables: seda)
        let envLayer = Layer(source: .environment, provider: envProvider,
                             raw: seda.mapValues { "\"\($0)\"" })
        environmentStageVariables = try Self.checkEnvironment(seda, layer: envLayer)
        layers.append(envLayer)

        // The file: its key set is checked from our own parse; its values are
        // read through swift-configuration's JSONSnapshot of the same bytes.
        var named = Set<String>()
        if let file {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                throw .invalidConfiguration("cannot read configuration file \(file): \(error.localizedDescription)")
            }
            let tree: JSONValue
            do { tree = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
                var reason = "\(error)"
                if case DecodingError.dataCorrupted(let context) = error {
                    reason = context.underlyingError.map { "\($0)" } ?? context.debugDescription
                }
                throw .invalidConfiguration("configuration file \(file) is not valid JSON: \(reason)")
            }
            guard case .object(let top) = tree else {
                throw .invalidConfiguration("configuration file \(file): the top level must be a JSON object")
            }
            var leaves: [([String], JSONValue)] = []
            if let section = top["seda"] { JSONValue.flatten(section, ["seda"], into: &leaves) }
            let source = Source.file(file)
            for (path, value) in leaves { try Keys.check(path, value, in: source, named: &named) }
            let snapshot: JSONSnapshot
            do {
                snapshot = try JSONSnapshot(data: data.bytes, providerName: "file \(file)",
                                            parsingOptions: .default)
            } catch {
                throw .invalidConfiguration("configuration file \(file): \(error)")
            }
            layers.append(Layer(source: source, provider: FixedSnapshotProvider(fixed: snapshot),
                                raw: Dictionary(leaves.compactMap { path, value in
                                    value.isNull ? nil : (path.joined(separator: "."), value.description)
                                }, uniquingKeysWith: { $1 })))
        }

        // Code: the same keys, checked the same way.
        let codeLeaves = code.leaves()
        for (path, value) in codeLeaves { try Keys.check(path, value, in: .code, named: &named) }
        let codeValues = codeLeaves.filter { !$0.1.isNull }
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (path, value) in codeValues { values[AbsoluteConfigKey(path)] = value.configValue }
        layers.append(Layer(source: .code, provider: InMemoryProvider(name: "code", values: values),
                            raw: Dictionary(codeValues.map { ($0.0.joined(separator: "."), $0.1.description) },
                                            uniquingKeysWith: { $1 })))

        // Each layer, then its Sandstorm aliases: a canonical key in a higher
        // layer beats an alias in a lower one.
        self.layers = layers
        reader = ConfigReader(providers: layers.flatMap { [$0.provider, aliasing($0.provider)] })
        stageNames = named.sorted()

        // Read every runtime and global key now, and every key of each stage
        // named anywhere, so that a bad value fails at startup.
        cpuThreads = try Self.read(Keys.cpuThreads, at: ["seda"], reader, layers)?.int
        pinThreads = try Self.read(Keys.pinThreads, at: ["seda"], reader, layers)?.bool ?? false
        let g = Keys.globalPrefix
        profile = ProfileSettings(
            enabled: try Self.read(Keys.profileEnable, at: g, reader, layers)?.bool ?? false,
            delay: .milliseconds(try Self.read(Keys.profileDelay, at: g, reader, layers)?.int ?? 1000))
        for spec in Keys.global { _ = try Self.read(spec, at: g, reader, layers) }
        let envStages = environmentStageVariables.compactMap { $0.stageParts.first }
        for name in Set(stageNames).union(envStages) {
            for spec in Keys.stage { _ = try Self.read(spec, at: Keys.stagePrefix(name), reader, layers) }
        }
    }

    /// The options of stage `name`: each key from the stage's section, else
    /// from `seda.global`, else from `defaults`. Throws for a bad value or
    /// for a key that does not fit the stage's thread manager.
    public func options(forStage name: String, defaults: StageOptions = StageOptions()) throws(SedaError) -> StageOptions {
        try settings(forStage: name, defaults: defaults).options
    }

    /// Everything the configuration says about stage `name`: its options and
    /// its controllers' settings (which nothing uses yet).
    public func settings(forStage name: String, defaults: StageOptions = StageOptions()) throws(SedaError) -> StageConfiguration {
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
            if let v = try pick(Keys.threads) { threads = v.int; threadsOrigin = v.origin }
            if let v = try pick(Keys.maxThreads) { maxThreads = v.int; maxOrigin = v.origin }
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
        if let v = try Self.read(Keys.sizeControllerDelay, at: g, reader, layers) { governor.delay = .milliseconds(v.int) }
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
                    + "(a number of milliseconds > 0)")
            }
        }

        var admission = AdmissionSettings()
        if let v = try pick(Keys.admissionThreshold) { admission.threshold = v.int }
        if let v = try pick(Keys.admissionRate) { admission.rateLimit = v.double }
        if let v = try pick(Keys.admissionBurst) {
            guard admission.rateLimit != nil else {
                throw .invalidConfiguration("\(v.origin), but stage '\(name)' has no rate limit: "
                                            + "set \(stageKey(Keys.admissionRate)) too")
            }
            admission.burst = v.int
        }

        if let v = try pick(Keys.priorityClasses) { options.priorityClasses = v.int }
        let codel = try pick(Keys.discipline).map { $0.string == "codel" } ?? false
        let codelTarget = try pick(Keys.codelTarget), codelInterval = try pick(Keys.codelInterval)
        if codel {
            options.discipline = .codel(target: .microseconds(Int64((codelTarget?.double ?? 5) * 1000)),
                                        interval: .microseconds(Int64((codelInterval?.double ?? 100) * 1000)))
        } else if let v = codelTarget ?? codelInterval {
            throw .invalidConfiguration("\(v.origin), but stage '\(name)' does not use CoDel: "
                                        + "set \(stageKey(Keys.discipline)) to \"codel\" too")
        }

        try options.validate(stage: name)
        return StageConfiguration(name: name, options: options, governor: governor,
                                  batchController: batch, responseTimeController: rt, admission: admission)
    }

    /// Throws if the configuration configures a stage not in `names` (a
    /// misspelt stage name would otherwise be ignored). Call it once every
    /// stage is added: ``Runtime/checkConfiguredStages(_:)``.
    public func checkStagesExist(_ names: some Sequence<String>) throws(SedaError) {
        let names = Set(names)
        let list = names.sorted().map { "'\($0)'" }.joined(separator: ", ")
        for name in stageNames where !names.contains(name) {
            let whereSet = layers.first { layer in
                layer.raw.keys.contains { $0.hasPrefix("seda.stages.\(name).") }
            }?.source.label ?? "code"
            throw .invalidConfiguration(
                "seda.stages.\(name) (\(whereSet)) configures a stage the runtime does not have; its stages are \(list)")
        }
        guard let env = layers.first(where: { $0.source == .environment }) else { return }
        let encoded = Set(names.map { Keys.environmentStagePart(of: $0, env) })
        for variable in environmentStageVariables where !variable.stageParts.contains(where: encoded.contains) {
            throw .invalidConfiguration(
                "environment variable \(variable.name) configures a stage the runtime does not have; its stages are \(list)")
        }
    }
}

// MARK: - Settings made in code

/// Which threads drive a stage, without their counts (``ThreadManager`` has them).
public enum ThreadManagerKind: String, Sendable, Equatable, CaseIterable {
    /// ``ThreadManager/shared(concurrency:)`` (Sandstorm's TPPTM).
    case shared
    /// ``ThreadManager/dedicated(threads:maxThreads:)`` (Sandstorm's TPSTM).
    case dedicated
}

/// A response-time controller's algorithm (Sandstorm's `rtController.type`).
public enum ResponseTimeControllerKind: String, Sendable, Equatable, CaseIterable {
    case direct, pid, mm1
}

/// One stage's settings made in code, or the defaults for every stage
/// (``SedaSettings/global``). `nil` leaves a key unset in this layer. The
/// keys and their ranges are in ``SedaConfiguration``'s table; the
/// controller settings are accepted and validated but not used yet.
public struct StageSettings: Sendable, Equatable {
    public var threadManager: ThreadManagerKind?
    public var concurrency: Int?
    public var threads: Int?
    public var maxThreads: Int?
    public var batchSize: Int?
    public var queueCapacity: Int?
    /// Per stage only: setting it in ``SedaSettings/global`` is an error.
    public var pinCPU: Int?
    /// `threadPool.minThreads`.
    public var minThreads: Int?
    /// `threadPool.sizeController.enable`.
    public var sizeControllerEnabled: Bool?
    /// `threadPool.sizeController.threshold`.
    public var sizeControllerThreshold: Int?
    /// `threadPool.sizeController.idleTimeThreshold`, in whole milliseconds.
    public var idleTimeThreshold: Duration?
    /// `batchController.enable`.
    public var batchControllerEnabled: Bool?
    /// `batchController.minBatch`.
    public var minBatch: Int?
    /// `batchController.recalcWindow`, in whole milliseconds.
    public var recalcWindow: Duration?
    /// `batchController.smoothConst`.
    public var smoothConst: Double?
    /// `rtController.enable`.
    public var rtControllerEnabled: Bool?
    /// `rtController.type`.
    public var rtControllerType: ResponseTimeControllerKind?
    /// `rtController.targetResponseTime`.
    public var targetResponseTime: Duration?

    public init(threadManager: ThreadManagerKind? = nil, concurrency: Int? = nil, threads: Int? = nil,
                maxThreads: Int? = nil, batchSize: Int? = nil, queueCapacity: Int? = nil, pinCPU: Int? = nil,
                minThreads: Int? = nil, sizeControllerEnabled: Bool? = nil, sizeControllerThreshold: Int? = nil,
                idleTimeThreshold: Duration? = nil, batchControllerEnabled: Bool? = nil, minBatch: Int? = nil,
                recalcWindow: Duration? = nil, smoothConst: Double? = nil, rtControllerEnabled: Bool? = nil,
                rtControllerType: ResponseTimeControllerKind? = nil, targetResponseTime: Duration? = nil) {
        self.threadManager = threadManager
        self.concurrency = concurrency
        self.threads = threads
        self.maxThreads = maxThreads
        self.batchSize = batchSize
        self.queueCapacity = queueCapacity
        self.pinCPU = pinCPU
        self.minThreads = minThreads
        self.sizeControllerEnabled = sizeControllerEnabled
        self.sizeControllerThreshold = sizeControllerThreshold
        self.idleTimeThreshold = idleTimeThreshold
        self.batchControllerEnabled = batchControllerEnabled
        self.minBatch = minBatch
        self.recalcWindow = recalcWindow
        self.smoothConst = smoothConst
        self.rtControllerEnabled = rtControllerEnabled
        self.rtControllerType = rtControllerType
        self.targetResponseTime = targetResponseTime
    }

    fileprivate func leaves(_ prefix: [String]) -> [([String], JSONValue)] {
        var out: [([String], JSONValue)] = []
        func put(_ spec: KeySpec, _ value: JSONValue?) {
            if let value { out.append((prefix + spec.components, value)) }
        }
        put(Keys.threadManager, threadManager.map { .string($0.rawValue) })
        put(Keys.concurrency, concurrency.map(JSONValue.int))
        put(Keys.threads, threads.map(JSONValue.int))
        put(Keys.maxThreads, maxThreads.map(JSONValue.int))
        put(Keys.batchSize, batchSize.map(JSONValue.int))
        put(Keys.queueCapacity, queueCapacity.map(JSONValue.int))
        put(Keys.pinCPU, pinCPU.map(JSONValue.int))
        put(Keys.minThreads, minThreads.map(JSONValue.int))
        put(Keys.sizeControllerEnable, sizeControllerEnabled.map(JSONValue.bool))
        put(Keys.sizeControllerThreshold, sizeControllerThreshold.map(JSONValue.int))
        put(Keys.idleTimeThreshold, idleTimeThreshold.map { .int($0.wholeMilliseconds) })
        put(Keys.batchControllerEnable, batchControllerEnabled.map(JSONValue.bool))
        put(Keys.minBatch, minBatch.map(JSONValue.int))
        put(Keys.recalcWindow, recalcWindow.map { .int($0.wholeMilliseconds) })
        put(Keys.smoothConst, smoothConst.map(JSONValue.double))
        put(Keys.rtControllerEnable, rtControllerEnabled.map(JSONValue.bool))
        put(Keys.rtControllerType, rtControllerType.map { .string($0.rawValue) })
        put(Keys.targetResponseTime, targetResponseTime.map { .double($0.milliseconds) })
        return out
    }
}

/// The code layer of a ``SedaConfiguration``: the file and the environment
/// override what is set here. `nil` leaves a key unset.
///
/// ```swift
/// var code = SedaSettings(cpuThreads: 4)
/// code.stages["Disk", default: StageSettings()].threadManager = .dedicated
/// let configuration = try SedaConfiguration(code: code, file: "/etc/app/config.json")
/// ```
public struct SedaSettings: Sendable, Equatable {
    /// `seda.cpuThreads`.
    public var cpuThreads: Int?
    /// `seda.pinThreads`.
    public var pinThreads: Bool?
    /// `seda.global.*`: defaults for every stage.
    public var global: StageSettings
    /// `seda.stages.<name>.*`.
    public var stages: [String: StageSettings]
    /// `seda.global.threadPool.sizeController.delay`, in whole milliseconds.
    public var sizeControllerDelay: Duration?
    /// `seda.global.threadPool.sizeController.autoMaxDetect`.
    public var autoMaxDetect: Bool?
    /// `seda.global.profile.enable`.
    public var profileEnabled: Bool?
    /// `seda.global.profile.delay`, in whole milliseconds.
    public var profileDelay: Duration?

    public init(cpuThreads: Int? = nil, pinThreads: Bool? = nil, global: StageSettings = StageSettings(),
                stages: [String: StageSettings] = [:], sizeControllerDelay: Duration? = nil,
                autoMaxDetect: Bool? = nil, profileEnabled: Bool? = nil, profileDelay: Duration? = nil) {
        self.cpuThreads = cpuThreads
        self.pinThreads = pinThreads
        self.global = global
        self.stages = stages
        self.sizeControllerDelay = sizeControllerDelay
        self.autoMaxDetect = autoMaxDetect
        self.profileEnabled = profileEnabled
        self.profileDelay = profileDelay
    }

    fileprivate func leaves() -> [([String], JSONValue)] {
        var out: [([String], JSONValue)] = []
        if let cpuThreads { out.append((["seda"] + Keys.cpuThreads.components, .int(cpuThreads))) }
        if let pinThreads { out.append((["seda"] + Keys.pinThreads.components, .bool(pinThreads))) }
        let g = Keys.globalPrefix
        out += global.leaves(g)
        if let d = sizeControllerDelay { out.append((g + Keys.sizeControllerDelay.components, .int(d.wholeMilliseconds))) }
        if let a = autoMaxDetect { out.append((g + Keys.autoMaxDetect.components, .bool(a))) }
        if let e = profileEnabled { out.append((g + Keys.profileEnable.components, .bool(e))) }
        if let d = profileDelay { out.append((g + Keys.profileDelay.components, .int(d.wholeMilliseconds))) }
        for (name, stage) in stages.sorted(by: { $0.key < $1.key }) {
            let leaves = stage.leaves(Keys.stagePrefix(name))
            // A stage with nothing set is still named (checkStagesExist sees it).
            out += leaves.isEmpty ? [(Keys.stagePrefix(name) + ["queueCapacity"], .null)] : leaves
        }
        return out
    }
}

// MARK: - Resolved settings

/// Everything the configuration says about one stage.
public struct StageConfiguration: Sendable, Equatable {
    public var name: String
    /// What ``Runtime/addStage(_:handler:options:)`` takes.
    public var options: StageOptions
    /// Read by ``ThreadGovernor/init(runtime:configuration:)``; meaningful for dedicated stages.
    public var governor: GovernorSettings
    /// Read by ``BatchController/init(runtime:configuration:)``.
    public var batchController: BatchControllerSettings
    /// Installed by ``Runtime/addStage(_:handler:configuration:defaults:)`` when enabled.
    public var responseTimeController: ResponseTimeControllerSettings
    /// Installed by ``Runtime/addStage(_:handler:configuration:defaults:)``.
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
    func policies<Event: AnyObject & Sendable>(_ rt: ResponseTimeControllerSettings) throws(SedaError) -> [any AdmissionController<Event>] {
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

/// The profiler's settings (Sandstorm's `global.profile.enable`/`delay`).
/// Accepted and validated; nothing uses them yet.
public struct ProfileSettings: Sendable, Equatable {
    public var enabled = false
    public var delay: Duration = .milliseconds(1000)

    public init(enabled: Bool = false, delay: Duration = .milliseconds(1000)) {
        self.enabled = enabled
        self.delay = delay
    }
}

// MARK: - The runtime, configured

extension Runtime {
    /// Creates a runtime with `seda.cpuThreads` and `seda.pinThreads` from
    /// `configuration`.
    public convenience init(configuration: SedaConfiguration, clock: SedaClock = .monotonic,
                            logger: Logger = Logger(label: "seda")) throws(SedaError) {
        try self.init(cpuThreads: configuration.cpuThreads, pinThreads: configuration.pinThreads,
                      clock: clock, logger: logger)
    }

    /// Adds a stage whose options come from `configuration` (see
    /// ``SedaConfiguration/options(forStage:defaults:)``), with `defaults`
    /// for whatever it does not set. Its controller settings are checked
    /// too; the controllers read them when built from the configuration
    /// (``ThreadGovernor/init(runtime:configuration:)``,
    /// ``BatchController/init(runtime:configuration:)``).
    @discardableResult
    public func addStage<H: EventHandler>(_ name: String, handler: H, configuration: SedaConfiguration,
                                          defaults: StageOptions = StageOptions()) throws -> Sink<H.Event> {
        let settings = try configuration.settings(forStage: name, defaults: defaults)
        let policies: [any AdmissionController<H.Event>] =
            try settings.admission.policies(settings.responseTimeController)
        let admission: (any AdmissionController<H.Event>)? = policies.isEmpty ? nil
            : policies.count == 1 ? policies[0] : AdmissionChain<H.Event>(policies)
        return try addStage(name, handler: handler, options: settings.options, admission: admission)
    }

    /// Throws if `configuration` configures a stage this runtime does not
    /// have. Call it once every stage is added.
    public func checkConfiguredStages(_ configuration: SedaConfiguration) throws(SedaError) {
        try configuration.checkStagesExist(stageNames)
    }
}

// MARK: - Reading a key

/// A value read and range-checked, with where it came from for messages.
private struct Setting {
    enum Value { case int(Int), bool(Bool), double(Double), string(String) }
    let value: Value
    /// For example `seda.global.threads = 4 (file /etc/app.json)`.
    let origin: String

    var int: Int { if case .int(let v) = value { v } else { preconditionFailure("not an int: \(origin)") } }
    var bool: Bool { if case .bool(let v) = value { v } else { preconditionFailure("not a bool: \(origin)") } }
    var double: Double { if case .double(let v) = value { v } else { preconditionFailure("not a number: \(origin)") } }
    var string: String { if case .string(let v) = value { v } else { preconditionFailure("not a string: \(origin)") } }
}

extension SedaConfiguration {
    /// Reads `prefix + spec` through the ConfigReader: `nil` when no layer
    /// sets it (nor its alias); an error naming the key, the value and what
    /// was expected when the value is the wrong type or out of range.
    fileprivate static func read(_ spec: KeySpec, at prefix: [String], _ reader: ConfigReader,
                                 _ layers: [Layer]) throws(SedaError) -> Setting? {
        let key = prefix + spec.components
        let alias = spec.alias.map { prefix + $0.split(separator: ".").map(String.init) }
        // The layer that wins, and the spelling it uses.
        var found: (Layer, [String])?
        for layer in layers {
            let hasKey = layer.rawValue(key) != nil
            let hasAlias = alias.map { layer.rawValue($0) != nil } ?? false
            if hasKey, hasAlias, let alias {
                throw .invalidConfiguration(
                    "\(layer.describe(key)) and its Sandstorm alias \(layer.describe(alias)) are both set; keep one")
            }
            if found == nil, hasKey || hasAlias { found = (layer, hasKey ? key : alias!) }
        }
        guard let found else { return nil }
        let origin = found.0.describe(found.1)
        let bad = SedaError.invalidConfiguration("\(origin): expected \(spec.kind.expected)")
        let configKey = ConfigKey(key)
        let value: Setting.Value
        do {
            switch spec.kind {
            case .int(let range):
                let v = try reader.requiredInt(forKey: configKey)
                guard range.contains(v) else { throw bad }
                value = .int(v)
            case .bool:
                value = .bool(try reader.requiredBool(forKey: configKey))
            case .double(let isValid, _):
                let v = try reader.requiredDouble(forKey: configKey)
                guard isValid(v) else { throw bad }
                value = .double(v)
            case .choice(let choices, _):
                let v = try reader.requiredString(forKey: configKey)
                guard let canonical = choices[v.lowercased()] else { throw bad }
                value = .string(canonical)
            }
        } catch {
            throw bad
        }
        return Setting(value: value, origin: origin)
    }

    /// Checks every `SEDA_` variable against the keys; returns the stage
    /// variables with the stage-name parts each can mean (longest key first).
    fileprivate static func checkEnvironment(_ env: [String: String],
                                             layer: Layer) throws(SedaError) -> [(name: String, stageParts: [String])] {
        var fixed: [String: KeySpec] = [:]
        let runtimeNames = Keys.runtime.map { layer.encodedName(["seda"] + $0.components) }
        for (spec, name) in zip(Keys.runtime, runtimeNames) { fixed[name] = spec }
        for spec in Keys.global {
            fixed[layer.encodedName(Keys.globalPrefix + spec.components)] = spec
            if let a = spec.alias { fixed[layer.encodedName(Keys.globalPrefix + a.split(separator: ".").map(String.init))] = spec }
        }
        // "_QUEUE_CAPACITY" and the like, from a stage called "X".
        let stageHead = layer.encodedName(Keys.stagePrefix("X")) + "_"
        var suffixes: [String] = []
        for spec in Keys.stage {
            for c in [spec.components] + (spec.alias.map { [$0.split(separator: ".").map(String.init)] } ?? []) {
                suffixes.append(String(layer.encodedName(Keys.stagePrefix("X") + c).dropFirst(stageHead.count - 1)))
            }
        }
        suffixes.sort { $0.count > $1.count }
        let stagesHead = String(stageHead.dropLast(2))  // "SEDA_STAGES_"

        var stageVariables: [(name: String, stageParts: [String])] = []
        for name in env.keys.sorted() {
            if fixed[name] != nil { continue }
            var parts: [String] = []
            if name.hasPrefix(stagesHead) {
                let rest = name.dropFirst(stagesHead.count)
                for suffix in suffixes where rest.count > suffix.count && rest.hasSuffix(suffix) {
                    let part = String(rest.dropLast(suffix.count))
                    // Only names the provider can look up (upper case, encoded).
                    if layer.encodedName(Keys.stagePrefix(part)) == stagesHead + part { parts.append(part) }
                }
            }
            if !parts.isEmpty {
                stageVariables.append((name, parts))
                continue
            }
            // A near miss: a fixed name, or a stage name followed by a near stage key.
            var guesses = Array(fixed.keys)
            if name.hasPrefix(stagesHead) {
                let rest = name.dropFirst(stagesHead.count)
                for i in rest.indices where rest[i] == "_" && i > rest.startIndex {
                    let tail = String(rest[i...])
                    if let s = Keys.closest(to: tail, in: suffixes, limit: 2) {
                        guesses.append(stagesHead + rest[..<i] + s)
                    }
                }
            }
            let variable = "environment variable \(name)=\"\(env[name]!)\" is not a Seda configuration key"
            if let guess = Keys.closest(to: name, in: guesses) {
                throw .invalidConfiguration("\(variable): did you mean \(guess)?")
            }
            let stageKeys = suffixes.map { String($0.dropFirst()) }.sorted().joined(separator: ", ")
            throw .invalidConfiguration(
                "\(variable): expected \(runtimeNames.joined(separator: ", ")), "
                + "SEDA_GLOBAL_<KEY> or \(stagesHead)<STAGE>_<KEY>, with KEY one of \(stageKeys)")
        }
        return stageVariables
    }
}

// MARK: - The key table

/// What a key's value must be.
private enum ValueKind: Sendable {
    case int(ClosedRange<Int>)
    case bool
    case double(@Sendable (Double) -> Bool, String)
    /// Lower-cased accepted value → canonical value; what to print.
    case choice([String: String], String)

    var expected: String {
        switch self {
        case .int(let r): "an integer in \(r.lowerBound)...\(r.upperBound)"
        case .bool: "true or false"
        case .double(_, let what): what
        case .choice(_, let what): what
        }
    }

    /// Whether a JSON value has the right type (ranges are checked on reading).
    func accepts(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (_, .null): true
        case (.int, .int), (.bool, .bool), (.double, .int), (.double, .double), (.choice, .string): true
        default: false
        }
    }
}

/// One key: its name relative to its section, its Sandstorm alias there.
private struct KeySpec: Sendable {
    let name: String
    let alias: String?
    let kind: ValueKind
    var components: [String] { name.split(separator: ".").map(String.init) }

    init(_ name: String, _ kind: ValueKind, alias: String? = nil) {
        self.name = name
        self.kind = kind
        self.alias = alias
    }
}

private enum Keys {
    static let environmentPrefix = "SEDA_"
    static let globalPrefix = ["seda", "global"]
    static func stagePrefix(_ name: String) -> [String] { ["seda", "stages", name] }

    static let milliseconds: ValueKind = .int(1...Int(Int32.max))
    static let threadCount: ValueKind = .int(1...SedaLimits.threads)

    static let cpuThreads = KeySpec("cpuThreads", .int(1...SedaLimits.threads))
    static let pinThreads = KeySpec("pinThreads", .bool)

    static let threadManager = KeySpec("threadManager", .choice(
        ["shared": "shared", "dedicated": "dedicated", "tpptm": "shared", "tpstm": "dedicated"],
        "\"shared\" or \"dedicated\" (or Sandstorm's \"TPPTM\", \"TPSTM\")"))
    static let concurrency = KeySpec("concurrency", threadCount)
    static let threads = KeySpec("threads", threadCount, alias: "threadPool.initialThreads")
    static let maxThreads = KeySpec("maxThreads", threadCount, alias: "threadPool.maxThreads")
    static let batchSize = KeySpec("batchSize", .int(1...SedaLimits.batchSize), alias: "batchController.maxBatch")
    static let queueCapacity = KeySpec("queueCapacity", .int(1...SedaLimits.queueCapacity), alias: "queueThreshold")
    static let pinCPU = KeySpec("pinCPU", .int(0...1023))
    static let minThreads = KeySpec("threadPool.minThreads", threadCount)
    static let sizeControllerEnable = KeySpec("threadPool.sizeController.enable", .bool)
    static let sizeControllerThreshold = KeySpec("threadPool.sizeController.threshold",
                                                 .int(1...SedaLimits.queueCapacity))
    static let idleTimeThreshold = KeySpec("threadPool.sizeController.idleTimeThreshold", milliseconds)
    static let sizeControllerDelay = KeySpec("threadPool.sizeController.delay", milliseconds)
    static let autoMaxDetect = KeySpec("threadPool.sizeController.autoMaxDetect", .bool)
    static let batchControllerEnable = KeySpec("batchController.enable", .bool)
    static let minBatch = KeySpec("batchController.minBatch", .int(1...SedaLimits.batchSize))
    static let recalcWindow = KeySpec("batchController.recalcWindow", milliseconds)
    static let smoothConst = KeySpec("batchController.smoothConst",
                                     .double({ $0 >= 0 && $0 < 1 }, "a number from 0 up to, not including, 1"))
    static let rtControllerEnable = KeySpec("rtController.enable", .bool)
    static let rtControllerType = KeySpec("rtController.type", .choice(
        Dictionary(uniqueKeysWithValues: ResponseTimeControllerKind.allCases.map { ($0.rawValue, $0.rawValue) }),
        "\"direct\", \"pid\" or \"mm1\""))
    static let targetResponseTime = KeySpec("rtController.targetResponseTime",
                                            .double({ $0 > 0 && $0.isFinite }, "a number of milliseconds > 0"))
    static let admissionThreshold = KeySpec("admission.threshold", .int(1...SedaLimits.queueCapacity))
    static let admissionRate = KeySpec("admission.rateLimit",
                                       .double({ $0 > 0 && $0.isFinite }, "events per second > 0"))
    static let admissionBurst = KeySpec("admission.burst", .int(1...Int(Int32.max)))
    static let discipline = KeySpec("discipline", .choice(["fifo": "fifo", "codel": "codel"],
                                                          "\"fifo\" or \"codel\""))
    static let codelTarget = KeySpec("codel.target", .double({ $0 > 0 && $0.isFinite }, "a number of milliseconds > 0"))
    static let codelInterval = KeySpec("codel.interval", .double({ $0 > 0 && $0.isFinite }, "a number of milliseconds > 0"))
    static let priorityClasses = KeySpec("priorityClasses", .int(1...SedaLimits.priorityClasses))
    static let profileEnable = KeySpec("profile.enable", .bool)
    static let profileDelay = KeySpec("profile.delay", milliseconds)

    /// Under `seda.`.
    static let runtime = [cpuThreads, pinThreads]
    /// Under both `seda.global.` and `seda.stages.<name>.`.
    static let common = [threadManager, concurrency, threads, maxThreads, batchSize, queueCapacity,
                         minThreads, sizeControllerEnable, sizeControllerThreshold, idleTimeThreshold,
                         batchControllerEnable, minBatch, recalcWindow, smoothConst,
                         rtControllerEnable, rtControllerType, targetResponseTime,
                         admissionThreshold, admissionRate, admissionBurst,
                         discipline, codelTarget, codelInterval, priorityClasses]
    /// Under `seda.global.`.
    static let global = common.map { $0.name == "threadManager"
        ? KeySpec($0.name, $0.kind, alias: "defaultThreadManager") : $0 }
        + [sizeControllerDelay, autoMaxDetect, profileEnable, profileDelay]
    /// Under `seda.stages.<name>.`.
    static let stage = common + [pinCPU]
    /// Stage keys a shared stage has no use for.
    static let dedicatedOnly = [threads, maxThreads, pinCPU, minThreads, sizeControllerEnable,
                                sizeControllerThreshold, idleTimeThreshold]

    /// Sandstorm keys (or sections) Seda does not use, and why.
    static let retired: [(String, String)] = [
        ("threadPool.blockTime", "a Seda thread sleeps on its queue until an event arrives; there is no poll interval"),
        ("class", "a stage's handler is a Swift value passed to Runtime.addStage"),
        ("initargs", "a stage's handler is a Swift value passed to Runtime.addStage; give it its arguments in code"),
        ("crashOnException", "a handler that throws is counted and its thread carries on"),
        ("aSocket", "Sandstorm's aSocket layer is not configured here"),
        ("aDisk", "Sandstorm's aDisk layer is not configured here"),
        ("TPPTM", "use seda.cpuThreads and threadManager \"shared\""),
        ("AggTPSTM", "Sandstorm had retired it; use threadManager \"dedicated\""),
        ("profile.filename", "Seda writes no profile files"),
        ("profile.graphfilename", "Seda writes no profile files"),
        ("profile.sockets", "Seda writes no profile files"),
        ("profile.graph", "Seda writes no profile files"),
        ("rtController.multiclass", "the multiclass controller is not planned"),
    ]

    /// Checks one key set in the file or in code: its name, its section,
    /// the type of its value. Records the stage names it sees.
    static func check(_ path: [String], _ value: JSONValue, in source: Source,
                      named: inout Set<String>) throws(SedaError) {
        let dotted = path.joined(separator: ".")
        let at = "\(dotted) (\(source.label))"
        let valueAt = "\(dotted) = \(value) (\(source.label))"
        // null is unset, wherever it is.
        if value.isNull, path.count < 2 || path[1] == "global" && path.count < 3
            || path[1] == "stages" && path.count < 4 {
            return
        }
        guard path.count >= 2 else {
            throw .invalidConfiguration("\(valueAt) must be an object of Seda keys")
        }
        let table: [KeySpec], relative: [String], section: String
        switch path[1] {
        case "global":
            guard path.count >= 3 else {
                throw .invalidConfiguration("\(valueAt) must be an object of stage keys (defaults for every stage)")
            }
            (table, relative, section) = (global, Array(path[2...]), "seda.global")
        case "stages":
            guard path.count >= 4 else {
                throw .invalidConfiguration(
                    "\(valueAt) must be an object: seda.stages.<name> holds the keys of stage <name>")
            }
            try checkStageName(path[2], key: at)
            named.insert(path[2])
            (table, relative, section) = (stage, Array(path[3...]), "seda.stages.\(path[2])")
        default:
            (table, relative, section) = (runtime, Array(path[1...]), "seda")
        }
        let name = relative.joined(separator: ".")
        guard let spec = table.first(where: { $0.name == name || $0.alias == name }) else {
            if let retiredKey = retired.first(where: { name == $0.0 || name.hasPrefix($0.0 + ".") }) {
                throw .invalidConfiguration("\(at) is a Sandstorm key Seda does not use: \(retiredKey.1)")
            }
            let names = table.flatMap { [$0.name] + ($0.alias.map { [$0] } ?? []) }
            let sectionNames = section == "seda" ? names + ["global", "stages"] : names
            if section == "seda.global", name == "pinCPU" {
                throw .invalidConfiguration("\(at): pinCPU is set per stage, under seda.stages.<name>")
            }
            if let guess = closest(to: name, in: sectionNames) {
                throw .invalidConfiguration("\(at) is not a Seda configuration key: did you mean \(section).\(guess)?")
            }
            throw .invalidConfiguration(
                "\(at) is not a Seda configuration key: the keys of \(section) are "
                + sectionNames.sorted().joined(separator: ", "))
        }
        guard spec.kind.accepts(value) else {
            throw .invalidConfiguration("\(valueAt): expected \(spec.kind.expected)")
        }
    }

    static func checkStageName(_ name: String, key: String) throws(SedaError) {
        guard !name.isEmpty, name.utf8.count <= SedaLimits.stageNameBytes, !name.contains(".") else {
            throw .invalidConfiguration(
                "\(key): stage name '\(name)' must be 1 to \(SedaLimits.stageNameBytes) bytes without '.' to be configured")
        }
    }

    /// How the environment spells stage `name` (`HttpServer` → `HTTP_SERVER`).
    static func environmentStagePart(of name: String, _ env: Layer) -> String {
        String(env.encodedName(stagePrefix(name)).dropFirst(env.encodedName(["seda", "stages"]).count + 1))
    }

    /// The candidate nearest `word` (ignoring case), if within `limit` edits
    /// and fewer than half of `word`'s characters.
    static func closest(to word: String, in candidates: [String], limit: Int = 3) -> String? {
        let best = candidates.map { ($0, editDistance(word, $0)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= limit, best.1 * 2 < word.count else { return nil }
        return best.0
    }

    /// Levenshtein distance, ignoring case.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased()), b = Array(b.lowercased())
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }
}

// MARK: - Layers

/// Where a value was set.
private enum Source: Sendable, Equatable {
    case environment, file(String), code

    var label: String {
        switch self {
        case .environment: "environment"
        case .file(let path): "file \(path)"
        case .code: "code"
        }
    }
}

/// One layer: its provider, and the raw text of every value it sets, by the
/// provider's own spelling of the key (for presence checks and messages).
private struct Layer: Sendable {
    let source: Source
    let provider: any ConfigProvider
    let raw: [String: String]

    /// The key as this layer's provider spells it.
    func encodedName(_ key: [String]) -> String {
        if source == .environment,
           let encoded = try? provider.value(forKey: AbsoluteConfigKey(key), type: .string).encodedKey {
            return encoded
        }
        return key.joined(separator: ".")
    }

    func rawValue(_ key: [String]) -> String? { raw[encodedName(key)] }

    /// For example `SEDA_STAGES_HTTP_THREADS="abc" (environment, seda.stages.Http.threads)`.
    func describe(_ key: [String]) -> String {
        let dotted = key.joined(separator: ".")
        let value = rawValue(key) ?? "unset"
        if source == .environment { return "\(encodedName(key))=\(value) (environment, \(dotted))" }
        return "\(dotted) = \(value) (\(source.label))"
    }
}

/// A provider that maps each canonical key to its Sandstorm alias, so that
/// the ConfigReader finds a value set under the alias in the same layer.
private func aliasing<P: ConfigProvider>(_ provider: P) -> any ConfigProvider {
    KeyMappingProvider(upstream: provider) { key in
        let c = key.components
        guard c.count >= 3, c[0] == "seda" else { return key }
        let (prefix, relative, table): ([String], [String], [KeySpec])
        if c[1] == "global" {
            (prefix, relative, table) = (Array(c[..<2]), Array(c[2...]), Keys.global)
        } else if c[1] == "stages", c.count >= 4 {
            (prefix, relative, table) = (Array(c[..<3]), Array(c[3...]), Keys.stage)
        } else {
            return key
        }
        let name = relative.joined(separator: ".")
        guard let alias = table.first(where: { $0.name == name })?.alias else { return key }
        return AbsoluteConfigKey(prefix + alias.split(separator: ".").map(String.init), context: key.context)
    }
}

/// A provider over one fixed snapshot (the file's, parsed once).
private struct FixedSnapshotProvider<Snapshot: ConfigSnapshot>: ConfigProvider {
    let fixed: Snapshot

    var providerName: String { fixed.providerName }

    func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        try fixed.value(forKey: key, type: type)
    }

    nonisolated(nonsending) func fetchValue(forKey key: AbsoluteConfigKey, type: ConfigType) async throws -> LookupResult {
        try fixed.value(forKey: key, type: type)
    }

    nonisolated(nonsending) func watchValue<Return: ~Copyable>(
        forKey key: AbsoluteConfigKey, type: ConfigType,
        updatesHandler: nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<Result<LookupResult, any Error>, Never>) async throws -> Return
    ) async throws -> Return {
        try await watchValueFromValue(forKey: key, type: type, updatesHandler: updatesHandler)
    }

    func snapshot() -> any ConfigSnapshot { fixed }

    nonisolated(nonsending) func watchSnapshot<Return: ~Copyable>(
        updatesHandler: nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<any ConfigSnapshot, Never>) async throws -> Return
    ) async throws -> Return {
        try await watchSnapshotFromSnapshot(updatesHandler: updatesHandler)
    }
}

// MARK: - JSON, typed exactly

/// A JSON value that keeps `true` apart from `1` (JSONSnapshot does not).
private indirect enum JSONValue: Decodable, Sendable, CustomStringConvertible {
    case null, bool(Bool), int(Int), double(Double), string(String)
    case array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([JSONValue].self) { self = .array(v) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var isNull: Bool { if case .null = self { true } else { false } }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let v): "\(v)"
        case .int(let v): "\(v)"
        case .double(let v): "\(v)"
        case .string(let v): "\"\(v)\""
        case .array(let v): "[\(v.map(\.description).joined(separator: ", "))]"
        case .object(let v): "{\(v.keys.sorted().map { "\"\($0)\": \(v[$0]!)" }.joined(separator: ", "))}"
        }
    }

    var configValue: ConfigValue {
        switch self {
        case .bool(let v): ConfigValue(.bool(v), isSecret: false)
        case .int(let v): ConfigValue(.int(v), isSecret: false)
        case .double(let v): ConfigValue(.double(v), isSecret: false)
        case .string(let v): ConfigValue(.string(v), isSecret: false)
        case .null, .array, .object: ConfigValue(.string(description), isSecret: false)
        }
    }

    /// Every non-object value under `value`, by path; a dotted member name
    /// is a path, as in JSONSnapshot. An empty object adds nothing, except
    /// as a stage (`seda.stages.<name>: {}`), which it names.
    static func flatten(_ value: JSONValue, _ path: [String], into out: inout [([String], JSONValue)]) {
        guard case .object(let members) = value else {
            out.append((path, value))
            return
        }
        if members.isEmpty, path.count == 3, path[0] == "seda", path[1] == "stages" {
            out.append((path + ["queueCapacity"], .null))
        }
        for (name, member) in members.sorted(by: { $0.key < $1.key }) {
            flatten(member, path + name.split(separator: ".", omittingEmptySubsequences: false).map(String.init),
                    into: &out)
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    fileprivate var wholeMilliseconds: Int {
        let (s, a) = components
        return Int(s) * 1000 + Int(a / 1_000_000_000_000_000)
    }

    fileprivate var milliseconds: Double {
        let (s, a) = components
        return Double(s) * 1000 + Double(a) / 1e15
    }
}
