import Seda

/// What a key's value must be.
enum ValueKind: Sendable {
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
struct KeySpec: Sendable {
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

enum Keys {
    static let environmentPrefix = "SEDA_"
    static let globalPrefix = ["seda", "global"]
    static func stagePrefix(_ name: String) -> [String] { ["seda", "stages", name] }

    static let milliseconds: ValueKind = .int(1...Int(Int32.max))
    /// A time in milliseconds with a fraction, in the same range as the
    /// whole-millisecond keys (so that no conversion can overflow).
    static let fractionalMilliseconds: ValueKind = .double(
        { $0 > 0 && $0 <= Double(Int32.max) },
        "a number of milliseconds > 0, at most \(Int32.max)")
    static let threadCount: ValueKind = .int(1...SedaLimits.threads)

    static let cpuThreads = KeySpec("cpuThreads", .int(1...SedaLimits.threads))
    static let pinThreads = KeySpec("pinThreads", .bool)
    /// The shared threads' poller (`Runtime(poller:)`); its environment
    /// variable is `SEDA_POLLER`, the one the C core reads.
    static let poller = KeySpec(
        "poller",
        .choice(
            [
                "select": "select", "poll": "poll", "epoll": "epoll", "io_uring": "io_uring",
                "uring": "io_uring", "iouring": "io_uring", "default": "default",
            ],
            "\"select\", \"poll\", \"epoll\" or \"io_uring\" (or \"default\": SEDA_POLLER's backend, else epoll)"))
    /// The file stages' disk engine (`FileStage(engine:)`); its environment
    /// variable is `SEDA_DISK`, the one the C core reads.
    static let disk = KeySpec(
        "disk",
        .choice(
            ["io_uring": "io_uring", "libaio": "libaio", "threads": "threads", "default": "default"],
            "\"io_uring\", \"libaio\" or \"threads\" (or \"default\": SEDA_DISK's engine, else io_uring)"))

    static let threadManager = KeySpec(
        "threadManager",
        .choice(
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
    static let sizeControllerThreshold = KeySpec(
        "threadPool.sizeController.threshold",
        .int(1...SedaLimits.queueCapacity))
    static let idleTimeThreshold = KeySpec("threadPool.sizeController.idleTimeThreshold", milliseconds)
    static let sizeControllerDelay = KeySpec("threadPool.sizeController.delay", milliseconds)
    static let autoMaxDetect = KeySpec("threadPool.sizeController.autoMaxDetect", .bool)
    static let batchControllerEnable = KeySpec("batchController.enable", .bool)
    static let minBatch = KeySpec("batchController.minBatch", .int(1...SedaLimits.batchSize))
    static let recalcWindow = KeySpec("batchController.recalcWindow", milliseconds)
    static let smoothConst = KeySpec(
        "batchController.smoothConst",
        .double({ $0 >= 0 && $0 < 1 }, "a number from 0 up to, not including, 1"))
    static let rtControllerEnable = KeySpec("rtController.enable", .bool)
    static let rtControllerType = KeySpec(
        "rtController.type",
        .choice(
            Dictionary(uniqueKeysWithValues: ResponseTimeControllerKind.allCases.map { ($0.rawValue, $0.rawValue) }),
            "\"direct\", \"pid\" or \"mm1\""))
    static let targetResponseTime = KeySpec(
        "rtController.targetResponseTime",
        fractionalMilliseconds)
    static let admissionThreshold = KeySpec("admission.threshold", .int(1...SedaLimits.queueCapacity))
    static let admissionRate = KeySpec(
        "admission.rateLimit",
        .double({ $0 > 0 && $0.isFinite }, "events per second > 0"))
    static let admissionBurst = KeySpec("admission.burst", .int(1...Int(Int32.max)))
    static let discipline = KeySpec(
        "discipline",
        .choice(
            ["fifo": "fifo", "codel": "codel"],
            "\"fifo\" or \"codel\""))
    static let codelTarget = KeySpec("codel.target", fractionalMilliseconds)
    static let codelInterval = KeySpec("codel.interval", fractionalMilliseconds)
    static let priorityClasses = KeySpec("priorityClasses", .int(1...SedaLimits.priorityClasses))

    /// Under `seda.`.
    static let runtime = [cpuThreads, pinThreads, poller, disk]

    /// `SEDA_` variables the C core reads for itself that are no
    /// configuration key (test knobs): the environment layer lets them be.
    static let coreVariables: Set<String> = ["SEDA_DISK_URING_SETUP"]
    /// Under both `seda.global.` and `seda.stages.<name>.`.
    static let common = [
        threadManager, concurrency, threads, maxThreads, batchSize, queueCapacity,
        minThreads, sizeControllerEnable, sizeControllerThreshold, idleTimeThreshold,
        batchControllerEnable, minBatch, recalcWindow, smoothConst,
        rtControllerEnable, rtControllerType, targetResponseTime,
        admissionThreshold, admissionRate, admissionBurst,
        discipline, codelTarget, codelInterval, priorityClasses,
    ]
    /// Under `seda.global.`.
    static let global =
        common.map {
            $0.name == "threadManager"
                ? KeySpec($0.name, $0.kind, alias: "defaultThreadManager") : $0
        }
        + [sizeControllerDelay, autoMaxDetect]
    /// Under `seda.stages.<name>.`.
    static let stage = common + [pinCPU]
    /// Stage keys a shared stage has no use for.
    static let dedicatedOnly = [
        threads, maxThreads, pinCPU, minThreads, sizeControllerEnable,
        sizeControllerThreshold, idleTimeThreshold,
    ]

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
        (
            "profile",
            "Seda's profiler is always on and writes no files: read runtime.snapshot() (its "
                + "graphviz() draws the stage graph), or export it periodically with StageMetricsExporter "
                + "(the SedaMetrics product)"
        ),
        ("rtController.multiclass", "the multiclass controller is not planned"),
    ]

    /// Checks one key set in the file or in code: its name, its section,
    /// the type of its value. Records the stage names it sees.
    static func check(
        _ path: [String], _ value: JSONValue, in source: Source,
        named: inout Set<String>
    ) throws(SedaError) {
        let dotted = path.joined(separator: ".")
        let at = "\(dotted) (\(source.label))"
        let valueAt = "\(dotted) = \(value) (\(source.label))"
        // null is unset, wherever it is.
        if value.isNull,
            path.count < 2 || path[1] == "global" && path.count < 3
                || path[1] == "stages" && path.count < 4
        {
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
                "\(key): stage name '\(name)' must be 1 to \(SedaLimits.stageNameBytes) bytes without '.' to be configured"
            )
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
