import Configuration
import Logging
import Seda

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

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
/// `SedaError/invalidConfiguration(_:)` naming the full key, the bad value
/// and what was expected. Everything in the file, in code and in the
/// environment is checked when the configuration is created; a stage's
/// cross-key checks (such as `threads` on a shared stage) run when its
/// settings are resolved, in ``settings(forStage:defaults:)`` (that is, in
/// `Runtime/addStage(_:handler:configuration:defaults:)`).
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
/// | `seda.poller` | `"select"`, `"poll"`, `"epoll"`, `"io_uring"` (case-insensitive; `"uring"` = io_uring), `"default"` | epoll | – | the shared threads' poller (`PollerBackend`); environment `SEDA_POLLER` |
/// | `seda.disk` | `"io_uring"`, `"libaio"`, `"threads"`, `"default"` | io_uring | – | the disk engine of file stages made with a configuration (`DiskEngine`); environment `SEDA_DISK` |
/// | `S threadManager` | `"shared"`, `"dedicated"` (case-insensitive; `"TPPTM"` = shared, `"TPSTM"` = dedicated) | shared | `seda.global.defaultThreadManager` | `ThreadManager` |
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
/// | `S rtController.targetResponseTime` | number ms in (0, 2^31) | none | – | response-time controller †: target |
/// | `S admission.threshold` | int 1...2^30 | none | – | admission: refuse while the queue holds this many |
/// | `S admission.rateLimit` | number > 0 | none | – | admission: token bucket, events/s |
/// | `S admission.burst` | int ≥ 1 | rate/10 | – | admission: the bucket's depth (needs rateLimit) |
/// | `S discipline` | `"fifo"`, `"codel"` | fifo | – | queue discipline under overload |
/// | `S codel.target`, `S codel.interval` | number ms in (0, 2^31) | 5, 100 | – | CoDel's target and interval |
/// | `S priorityClasses` | int 1...8 | 1 | – | strict priority classes |
///
/// † Validated into `GovernorSettings`, `BatchControllerSettings` and
/// ``ResponseTimeControllerSettings``, which the controllers read: the
/// `ThreadGovernor` and `BatchController` initialisers that take a
/// configuration, and ``ResponseTimeControllerSettings``' admission chain
/// (``Seda/Runtime/addStage(_:handler:configuration:defaults:)`` installs
/// it). Adding a stage with a configuration does not start the governor or
/// the batching controller: build them from it.
///
/// Sandstorm keys Seda has no use for (`threadPool.blockTime`, `class`,
/// `initargs`, `crashOnException`, `aSocket`, `aDisk`, `TPPTM`, `AggTPSTM`,
/// `profile.*`: Seda's profiler is always on, read it with
/// `Runtime.snapshot()`, …) are rejected with the reason.
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
/// Every variable starting `SEDA_` must be one of these keys (or
/// `SEDA_DISK_URING_SETUP`, a test knob of the C core). Two stage names
/// that differ only in case or camel-case boundaries share their variables.
///
/// ## Poller and disk engine: who wins
///
/// `seda.poller` and `seda.disk` are spelt `SEDA_POLLER` and `SEDA_DISK` in
/// the environment: the very variables the C core reads when no backend or
/// engine is chosen. So, highest first:
///
/// 1. an explicit argument: `Runtime(configuration:poller:)`'s `poller`,
///    `FileStage(runtime:name:configuration:engine:options:)`'s `engine`
///    (and `Runtime(poller:)`, `FileStage(engine:)` without a configuration);
/// 2. the configuration: the environment variable, else the file, else code;
/// 3. nothing set anywhere (or `"default"`): the C core's built-in default,
///    epoll for the poller and io_uring for the disk.
///
/// Without a configuration, `Runtime(poller: .default)` and
/// `FileStage(engine: .automatic)` still read `SEDA_POLLER` and `SEDA_DISK`
/// (in the C core, which logs a bad `SEDA_DISK` and ignores it, and refuses a
/// bad `SEDA_POLLER`). Either way a kernel that refuses io_uring gets the
/// fallback (epoll; libaio, then threads) with a warning in the log.
///
/// Thread rules: immutable once created; every method may be called from any thread.
public struct SedaConfiguration: Sendable {
    /// Threads of the shared thread manager (`nil`: one per CPU).
    public let cpuThreads: Int?
    /// Pin shared thread *i* to CPU *i*.
    public let pinThreads: Bool
    /// `seda.poller` (`SEDA_POLLER`): the shared threads' poller; `nil`
    /// when no layer sets it.
    public let poller: PollerBackend?
    /// `seda.disk` (`SEDA_DISK`): the file stages' disk engine; `nil` when
    /// no layer sets it.
    public let diskEngine: DiskEngine?
    /// The stages named in the file and in code, sorted. Stages named only
    /// in the environment are not listed: their variable names lose case.
    public let stageNames: [String]

    let reader: ConfigReader
    let layers: [Layer]
    /// Each `SEDA_STAGES_…` variable with the stage-name parts it can mean.
    let environmentStageVariables: [(name: String, stageParts: [String])]

    /// Reads the configuration: `code`, overridden by the JSON `file` (when
    /// given), overridden by the `SEDA_…` variables of `environment`, and
    /// checks every key and value they set.
    /// - Parameters:
    ///   - code: the settings made in code, the lowest layer.
    ///   - file: a JSON configuration file; `nil` for none. A missing or
    ///     malformed file is an error.
    ///   - environment: the environment to read (pass a dictionary in tests).
    public init(
        code: SedaSettings = SedaSettings(), file: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(SedaError) {
        var layers: [Layer] = []

        // The environment: only SEDA_ variables are kept, and each must be a key.
        let seda = environment.filter { $0.key.hasPrefix(Keys.environmentPrefix) }
        let envProvider = EnvironmentVariablesProvider(environmentVariables: seda)
        let envLayer = Layer(
            source: .environment, provider: envProvider,
            raw: seda.mapValues { "\"\($0)\"" })
        environmentStageVariables = try Self.checkEnvironment(seda, layer: envLayer)
        layers.append(envLayer)

        // The file: parsed here (strictly, with positions in the messages);
        // only its `seda` member is read, checked key by key, and handed to
        // swift-configuration as an in-memory layer, like the code's.
        var named = Set<String>()
        if let file {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                throw .invalidConfiguration("cannot read configuration file \(file): \(error.localizedDescription)")
            }
            let bytes = [UInt8](data)
            let tree: JSONValue
            do throws(JSONParser.Failure) {
                try JSONParser.checkUTF8(bytes)
                tree = try JSONParser.parse(bytes)
            } catch {
                throw .invalidConfiguration("configuration file \(file) is not valid JSON: \(error)")
            }
            guard case .object(let top) = tree else {
                throw .invalidConfiguration("configuration file \(file): the top level must be a JSON object")
            }
            try Self.checkTopLevel(top, file: file)
            var leaves: [([String], JSONValue)] = []
            if let section = top["seda"] { JSONValue.flatten(section, ["seda"], into: &leaves) }
            let source = Source.file(file)
            for (path, value) in leaves { try Keys.check(path, value, in: source, named: &named) }
            let fileValues = leaves.filter { !$0.1.isNull }
            var values: [AbsoluteConfigKey: ConfigValue] = [:]
            for (path, value) in fileValues { values[AbsoluteConfigKey(path)] = value.configValue }
            layers.append(
                Layer(
                    source: source, provider: InMemoryProvider(name: "file \(file)", values: values),
                    raw: Dictionary(
                        fileValues.map { ($0.0.joined(separator: "."), $0.1.description) },
                        uniquingKeysWith: { $1 })))
        }

        // Code: the same keys, checked the same way.
        let codeLeaves = code.leaves()
        for (path, value) in codeLeaves { try Keys.check(path, value, in: .code, named: &named) }
        let codeValues = codeLeaves.filter { !$0.1.isNull }
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (path, value) in codeValues { values[AbsoluteConfigKey(path)] = value.configValue }
        layers.append(
            Layer(
                source: .code, provider: InMemoryProvider(name: "code", values: values),
                raw: Dictionary(
                    codeValues.map { ($0.0.joined(separator: "."), $0.1.description) },
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
        // The choices are the C core's own spellings: its parsers take them.
        poller = try Self.read(Keys.poller, at: ["seda"], reader, layers).map { PollerBackend(name: $0.string)! }
        diskEngine = try Self.read(Keys.disk, at: ["seda"], reader, layers).map { DiskEngine(name: $0.string)! }
        let g = Keys.globalPrefix
        for spec in Keys.global { _ = try Self.read(spec, at: g, reader, layers) }
        let envStages = environmentStageVariables.compactMap { $0.stageParts.first }
        for name in Set(stageNames).union(envStages) {
            for spec in Keys.stage { _ = try Self.read(spec, at: Keys.stagePrefix(name), reader, layers) }
        }
    }

    /// The file may be an application's own, with sections of its own; but
    /// with no `seda` section, a top-level member that is a near miss of
    /// `seda` (`"sedaa"`, `"Seda"`) is almost surely it, misspelt: refused
    /// with the suggestion rather than ignored.
    static func checkTopLevel(_ top: [String: JSONValue], file: String) throws(SedaError) {
        guard top["seda"] == nil else { return }
        for name in top.keys.sorted() where Self.isNearMiss(name, of: "seda") {
            throw .invalidConfiguration(
                "configuration file \(file): top-level member \"\(name)\" is not read: did you mean \"seda\"? "
                    + "(Seda reads only the \"seda\" member; the file has none)")
        }
    }

    /// One edit away (ignoring case), or two adjacent letters swapped: close
    /// enough that another meaning is unlikely (`"meta"`, two edits from
    /// `"seda"`, is not).
    static func isNearMiss(_ word: String, of target: String) -> Bool {
        if Keys.editDistance(word, target) <= 1 { return true }
        let a = Array(word.lowercased()), b = Array(target.lowercased())
        guard a.count == b.count else { return false }
        let diff = a.indices.filter { a[$0] != b[$0] }
        return diff.count == 2 && diff[1] == diff[0] + 1 && a[diff[0]] == b[diff[1]] && a[diff[1]] == b[diff[0]]
    }

    /// The options of stage `name`: each key from the stage's section, else
    /// from `seda.global`, else from `defaults`. Throws for a bad value or
    /// for a key that does not fit the stage's thread manager.
    public func options(forStage name: String, defaults: StageOptions = StageOptions()) throws(SedaError)
        -> StageOptions
    {
        try settings(forStage: name, defaults: defaults).options
    }
}
