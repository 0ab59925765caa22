import Seda

/// Which threads drive a stage, without their counts (`ThreadManager` has them).
public enum ThreadManagerKind: String, Sendable, Equatable, CaseIterable {
    /// `ThreadManager/shared(concurrency:)` (Sandstorm's TPPTM).
    case shared
    /// `ThreadManager/dedicated(threads:maxThreads:)` (Sandstorm's TPSTM).
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

    public init(
        threadManager: ThreadManagerKind? = nil, concurrency: Int? = nil, threads: Int? = nil,
        maxThreads: Int? = nil, batchSize: Int? = nil, queueCapacity: Int? = nil, pinCPU: Int? = nil,
        minThreads: Int? = nil, sizeControllerEnabled: Bool? = nil, sizeControllerThreshold: Int? = nil,
        idleTimeThreshold: Duration? = nil, batchControllerEnabled: Bool? = nil, minBatch: Int? = nil,
        recalcWindow: Duration? = nil, smoothConst: Double? = nil, rtControllerEnabled: Bool? = nil,
        rtControllerType: ResponseTimeControllerKind? = nil, targetResponseTime: Duration? = nil
    ) {
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

    func leaves(_ prefix: [String]) -> [([String], JSONValue)] {
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
    /// `seda.poller`.
    public var poller: PollerBackend?
    /// `seda.disk`.
    public var diskEngine: DiskEngine?

    public init(
        cpuThreads: Int? = nil, pinThreads: Bool? = nil, global: StageSettings = StageSettings(),
        stages: [String: StageSettings] = [:], sizeControllerDelay: Duration? = nil,
        autoMaxDetect: Bool? = nil, poller: PollerBackend? = nil, diskEngine: DiskEngine? = nil
    ) {
        self.cpuThreads = cpuThreads
        self.pinThreads = pinThreads
        self.poller = poller
        self.diskEngine = diskEngine
        self.global = global
        self.stages = stages
        self.sizeControllerDelay = sizeControllerDelay
        self.autoMaxDetect = autoMaxDetect
    }

    func leaves() -> [([String], JSONValue)] {
        var out: [([String], JSONValue)] = []
        if let cpuThreads { out.append((["seda"] + Keys.cpuThreads.components, .int(cpuThreads))) }
        if let pinThreads { out.append((["seda"] + Keys.pinThreads.components, .bool(pinThreads))) }
        if let poller { out.append((["seda"] + Keys.poller.components, .string(poller.name))) }
        if let diskEngine { out.append((["seda"] + Keys.disk.components, .string(diskEngine.name))) }
        let g = Keys.globalPrefix
        out += global.leaves(g)
        if let d = sizeControllerDelay {
            out.append((g + Keys.sizeControllerDelay.components, .int(d.wholeMilliseconds)))
        }
        if let a = autoMaxDetect { out.append((g + Keys.autoMaxDetect.components, .bool(a))) }
        for (name, stage) in stages.sorted(by: { $0.key < $1.key }) {
            let leaves = stage.leaves(Keys.stagePrefix(name))
            // A stage with nothing set is still named (checkStagesExist sees it).
            out += leaves.isEmpty ? [(Keys.stagePrefix(name) + ["queueCapacity"], .null)] : leaves
        }
        return out
    }
}
