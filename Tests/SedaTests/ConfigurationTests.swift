import Glibc
import SedaConfiguration
import Testing

@testable import Seda

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Writes `json` to a file of its own and removes it afterwards.
private func withFile<T>(_ json: String, _ body: (String) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("seda-configuration-\(UUID().uuidString).json")
    try Data(json.utf8).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url.path)
}

/// The message of the invalidConfiguration error `body` throws ("" when it throws none).
private func failure(_ body: () throws -> Void) -> String {
    do {
        try body()
        return ""
    } catch SedaError.invalidConfiguration(let message) {
        return message
    } catch {
        return "unexpected \(error)"
    }
}

/// The message when loading `json` (and `environment`) fails.
private func loadFailure(
    _ json: String, environment: [String: String] = [:],
    code: SedaSettings = SedaSettings()
) throws -> String {
    try withFile(json) { path in
        failure { _ = try SedaConfiguration(code: code, file: path, environment: environment) }
    }
}

private final class Probe: Sendable {}

private struct Ignore: EventHandler {
    func handle(_ batch: inout EventBatch<Probe>) throws {}
}

@Suite("Configuration")
struct ConfigurationTests {
    // MARK: Layers and precedence

    @Test func nothingSetGivesTheDefaults() throws {
        let c = try SedaConfiguration(environment: [:])
        #expect(c.cpuThreads == nil)
        #expect(c.pinThreads == false)
        #expect(c.stageNames.isEmpty)
        #expect(try c.options(forStage: "Any") == StageOptions())
        let custom = StageOptions(
            threadManager: .dedicated(threads: 2, maxThreads: 4), batchSize: 8,
            queueCapacity: 16, pinCPU: 1)
        #expect(try c.options(forStage: "Any", defaults: custom) == custom)
        let s = try c.settings(forStage: "Any")
        #expect(s.governor == GovernorSettings())
        #expect(s.batchController == BatchControllerSettings(maxBatch: 64))
        #expect(s.responseTimeController == ResponseTimeControllerSettings())
    }

    @Test func environmentOverridesFileOverridesCode() throws {
        var code = SedaSettings(cpuThreads: 2, pinThreads: true)
        code.stages["Http"] = StageSettings(batchSize: 8, queueCapacity: 100, pinCPU: nil)
        code.global = StageSettings(queueCapacity: 50)
        let json = """
            {"seda": {"cpuThreads": 3, "stages": {"Http": {"queueCapacity": 200, "batchSize": 16}}}}
            """
        try withFile(json) { path in
            let env = ["SEDA_STAGES_HTTP_QUEUE_CAPACITY": "300", "SEDA_CPU_THREADS": "4"]
            let all = try SedaConfiguration(code: code, file: path, environment: env)
            #expect(all.cpuThreads == 4)
            #expect(all.pinThreads == true)  // only code sets it
            #expect(try all.options(forStage: "Http").queueCapacity == 300)
            #expect(try all.options(forStage: "Http").batchSize == 16)

            let noEnv = try SedaConfiguration(code: code, file: path, environment: [:])
            #expect(noEnv.cpuThreads == 3)
            #expect(try noEnv.options(forStage: "Http").queueCapacity == 200)

            let codeOnly = try SedaConfiguration(code: code, environment: [:])
            #expect(codeOnly.cpuThreads == 2)
            #expect(try codeOnly.options(forStage: "Http").queueCapacity == 100)
            #expect(try codeOnly.options(forStage: "Http").batchSize == 8)
            // Another stage gets the global value, then the defaults passed in.
            #expect(try codeOnly.options(forStage: "Other").queueCapacity == 50)
            #expect(try codeOnly.options(forStage: "Other", defaults: StageOptions(batchSize: 4)).batchSize == 4)
        }
    }

    @Test func nullIsUnsetAndOtherSectionsAreNotOurs() throws {
        let json = """
            {"app": {"port": 8080}, "seda": {"cpuThreads": null, "global": null, "stages": {"A": {"threads": null}}}}
            """
        try withFile(json) { path in
            let c = try SedaConfiguration(code: SedaSettings(cpuThreads: 3), file: path, environment: [:])
            #expect(c.cpuThreads == 3)
            #expect(try c.options(forStage: "A") == StageOptions())
        }
        let empty = try withFile("{}") { path in try SedaConfiguration(file: path, environment: [:]) }
        #expect(empty.stageNames.isEmpty)
        #expect(
            failure { _ = try SedaConfiguration(file: "/nonexistent/seda.json", environment: [:]) }
                .contains("/nonexistent/seda.json"))
        #expect(try loadFailure("{").contains("not valid JSON"))
    }

    @Test func aStageKeyBeatsAGlobalKeyInAnyLayer() throws {
        let json = """
            {"seda": {"stages": {"Http": {"queueCapacity": 200}}}}
            """
        try withFile(json) { path in
            let c = try SedaConfiguration(file: path, environment: ["SEDA_GLOBAL_QUEUE_CAPACITY": "999"])
            #expect(try c.options(forStage: "Http").queueCapacity == 200)
            #expect(try c.options(forStage: "Disk").queueCapacity == 999)
        }
    }

    @Test func aStageSetOnlyInTheEnvironmentIsFound() throws {
        let c = try SedaConfiguration(environment: [
            "SEDA_STAGES_HTTP_SERVER_THREAD_MANAGER": "dedicated",
            "SEDA_STAGES_HTTP_SERVER_THREADS": "3",
            "SEDA_STAGES_HTTP_SERVER_MAX_THREADS": "6",
            "SEDA_STAGES_HTTP_SERVER_PIN_CPU": "1",
            "SEDA_PIN_THREADS": "yes",
            "PATH": "/usr/bin",  // not SEDA_: not ours
        ])
        #expect(c.pinThreads)
        let o = try c.options(forStage: "HttpServer")
        #expect(o.threadManager == .dedicated(threads: 3, maxThreads: 6))
        #expect(o.pinCPU == 1)
        #expect(c.stageNames.isEmpty)
    }

    // MARK: Every key

    @Test func everyKeyIsParsed() throws {
        let json = """
            {
              "app": {"anything": "is not ours"},
              "seda": {
                "cpuThreads": 6, "pinThreads": true,
                "global": {
                  "threadManager": "dedicated", "threads": 2, "maxThreads": 10,
                  "batchSize": 32, "queueCapacity": 4096,
                  "threadPool": {
                    "minThreads": 1,
                    "sizeController": {"enable": true, "delay": 500, "threshold": 10,
                                       "idleTimeThreshold": 3000, "autoMaxDetect": true}
                  },
                  "batchController": {"enable": true, "minBatch": 2, "recalcWindow": 250, "smoothConst": 0.5},
                  "rtController": {"enable": false, "type": "pid", "targetResponseTime": 12.5}
                },
                "stages": {
                  "Disk": {"threads": 4, "maxThreads": 8, "pinCPU": 3, "queueCapacity": 64,
                           "threadPool.minThreads": 2, "threadPool.sizeController.enable": false,
                           "rtController": {"enable": true, "type": "MM1", "targetResponseTime": 5}},
                  "Cpu": {"threadManager": "shared", "concurrency": 2, "batchSize": 16,
                          "batchController": {"minBatch": 4}},
                  "Empty": {}
                }
              }
            }
            """
        try withFile(json) { path in
            let c = try SedaConfiguration(file: path, environment: [:])
            #expect(c.cpuThreads == 6)
            #expect(c.pinThreads)
            #expect(c.stageNames == ["Cpu", "Disk", "Empty"])

            let disk = try c.settings(forStage: "Disk")
            #expect(
                disk.options
                    == StageOptions(
                        threadManager: .dedicated(threads: 4, maxThreads: 8),
                        batchSize: 32, queueCapacity: 64, pinCPU: 3))
            var governor = GovernorSettings()
            governor.enabled = false
            governor.minThreads = 2
            governor.threshold = 10
            governor.idleTimeThreshold = .milliseconds(3000)
            governor.delay = .milliseconds(500)
            governor.autoMaxDetect = true
            #expect(disk.governor == governor)
            var batch = BatchControllerSettings(maxBatch: 32)
            batch.enabled = true
            batch.minBatch = 2
            batch.recalcWindow = .milliseconds(250)
            batch.smoothConst = 0.5
            #expect(disk.batchController == batch)
            var rt = ResponseTimeControllerSettings()
            rt.enabled = true
            rt.type = .mm1
            rt.targetResponseTime = .milliseconds(5)
            #expect(disk.responseTimeController == rt)

            let cpu = try c.settings(forStage: "Cpu")
            #expect(
                cpu.options
                    == StageOptions(
                        threadManager: .shared(concurrency: 2), batchSize: 16,
                        queueCapacity: 4096))
            #expect(cpu.batchController.minBatch == 4)
            #expect(cpu.batchController.maxBatch == 16)
            #expect(cpu.responseTimeController.type == .pid)
            #expect(cpu.responseTimeController.targetResponseTime == .milliseconds(12.5))

            // Global values only, for a stage nobody named.
            #expect(
                try c.options(forStage: "Other")
                    == StageOptions(
                        threadManager: .dedicated(threads: 2, maxThreads: 10), batchSize: 32, queueCapacity: 4096))
        }
    }

    @Test func codeSetsEveryKeyToo() throws {
        var code = SedaSettings(
            cpuThreads: 1, pinThreads: false, sizeControllerDelay: .seconds(3),
            autoMaxDetect: true)
        code.stages["S"] = StageSettings(
            threadManager: .dedicated, threads: 2, maxThreads: 3, batchSize: 5, queueCapacity: 7, pinCPU: 0,
            minThreads: 1, sizeControllerEnabled: true, sizeControllerThreshold: 9,
            idleTimeThreshold: .milliseconds(11), batchControllerEnabled: true, minBatch: 2,
            recalcWindow: .milliseconds(13), smoothConst: 0.25, rtControllerEnabled: true,
            rtControllerType: .direct, targetResponseTime: .milliseconds(1.5))
        let c = try SedaConfiguration(code: code, environment: [:])
        let s = try c.settings(forStage: "S")
        #expect(
            s.options
                == StageOptions(
                    threadManager: .dedicated(threads: 2, maxThreads: 3), batchSize: 5,
                    queueCapacity: 7, pinCPU: 0))
        #expect(s.governor.enabled && s.governor.threshold == 9 && s.governor.autoMaxDetect)
        #expect(s.governor.idleTimeThreshold == .milliseconds(11) && s.governor.delay == .seconds(3))
        #expect(s.batchController.enabled && s.batchController.minBatch == 2 && s.batchController.smoothConst == 0.25)
        #expect(s.batchController.recalcWindow == .milliseconds(13))
        #expect(s.responseTimeController.enabled && s.responseTimeController.targetResponseTime == .milliseconds(1.5))
        #expect(c.stageNames == ["S"])
    }

    // MARK: Sandstorm aliases

    @Test func sandstormNamesAreAliases() throws {
        let json = """
            {"seda": {"global": {"defaultThreadManager": "TPSTM",
                                 "threadPool": {"initialThreads": 2, "maxThreads": 20}},
                      "stages": {"Http": {"queueThreshold": 500, "batchController": {"maxBatch": 10}},
                                 "Cpu": {"threadManager": "tpptm"}}}}
            """
        try withFile(json) { path in
            let c = try SedaConfiguration(file: path, environment: ["SEDA_STAGES_DISK_QUEUE_THRESHOLD": "77"])
            #expect(
                try c.options(forStage: "Http")
                    == StageOptions(
                        threadManager: .dedicated(threads: 2, maxThreads: 20), batchSize: 10, queueCapacity: 500))
            #expect(try c.options(forStage: "Cpu").threadManager == .shared())
            #expect(try c.options(forStage: "Disk").queueCapacity == 77)
        }
    }

    @Test func aliasPrecedenceFollowsTheLayers() throws {
        // The environment's alias beats the file's canonical key, and the
        // environment's canonical key beats the file's alias.
        try withFile(#"{"seda": {"stages": {"A": {"queueCapacity": 1}, "B": {"queueThreshold": 2}}}}"#) { path in
            let c = try SedaConfiguration(
                file: path,
                environment: [
                    "SEDA_STAGES_A_QUEUE_THRESHOLD": "10", "SEDA_STAGES_B_QUEUE_CAPACITY": "20",
                ])
            #expect(try c.options(forStage: "A").queueCapacity == 10)
            #expect(try c.options(forStage: "B").queueCapacity == 20)
        }
    }

    @Test func aKeyAndItsAliasInOneLayerIsAnError() throws {
        let m = try loadFailure(#"{"seda": {"stages": {"Http": {"queueCapacity": 1, "queueThreshold": 2}}}}"#)
        #expect(m.contains("seda.stages.Http.queueCapacity = 1"))
        #expect(m.contains("seda.stages.Http.queueThreshold = 2"))
        #expect(m.contains("keep one"))
        let e = failure {
            _ = try SedaConfiguration(environment: [
                "SEDA_GLOBAL_THREAD_MANAGER": "shared",
                "SEDA_GLOBAL_DEFAULT_THREAD_MANAGER": "TPSTM",
            ])
        }
        #expect(e.contains("SEDA_GLOBAL_THREAD_MANAGER") && e.contains("SEDA_GLOBAL_DEFAULT_THREAD_MANAGER"))
    }

    // MARK: Unknown keys

    @Test func anUnknownKeyInTheFileIsNamed() throws {
        let m = try loadFailure(#"{"seda": {"stages": {"Http": {"queueCapacty": 4096}}}}"#)
        #expect(m.contains("seda.stages.Http.queueCapacty"))
        #expect(m.contains("did you mean seda.stages.Http.queueCapacity?"))
        #expect(m.contains("not a Seda configuration key"))

        #expect(try loadFailure(#"{"seda": {"cpuThread": 2}}"#).contains("seda.cpuThread (file "))
        #expect(
            try loadFailure(#"{"seda": {"global": {"threadPool": {"maxThread": 2}}}}"#)
                .contains("seda.global.threadPool.maxThread"))
        #expect(try loadFailure(#"{"seda": {"global": {"pinCPU": 2}}}"#).contains("pinCPU is set per stage"))
        #expect(
            try loadFailure(#"{"seda": {"stages": {"Http": {"profile": {"enable": true}}}}}"#)
                .contains("seda.stages.Http.profile.enable"))
        #expect(try loadFailure(#"{"seda": {"stages": {"Http": 3}}}"#).contains("seda.stages.Http = 3 (file "))
        #expect(try loadFailure(#"{"seda": 3}"#).contains("seda = 3 (file "))
    }

    @Test func retiredSandstormKeysSayWhy() throws {
        let m = try loadFailure(#"{"seda": {"global": {"threadPool": {"blockTime": 1000}}}}"#)
        #expect(m.contains("seda.global.threadPool.blockTime"))
        #expect(m.contains("Sandstorm key Seda does not use"))
        #expect(
            try loadFailure(#"{"seda": {"stages": {"Http": {"class": "x.Y"}}}}"#).contains("seda.stages.Http.class"))
    }

    /// `profile.*` was parsed and then ignored: a key that does nothing is
    /// worse than an unknown one. Refused now, saying where the profile is.
    @Test func profileKeysAreRefusedWithWhereToLook() throws {
        for json in [
            #"{"seda": {"global": {"profile": {"enable": true}}}}"#,
            #"{"seda": {"global": {"profile.delay": 100}}}"#,
        ] {
            let m = try loadFailure(json)
            #expect(m.contains("Sandstorm key Seda does not use"), "\(m)")
            #expect(m.contains("runtime.snapshot()"), "\(m)")
        }
    }

    /// A misspelt top-level section was silently ignored: the whole file
    /// then configured nothing.
    @Test func aMisspeltTopLevelSectionIsRefused() throws {
        for name in ["sedaa", "Seda", "sdea", "seda_"] {
            let m = try loadFailure(#"{"\#(name)": {"cpuThreads": 2}, "app": {"port": 80}}"#)
            #expect(m.contains("top-level member \"\(name)\""), "\(m)")
            #expect(m.contains("did you mean \"seda\"?"), "\(m)")
        }
        // An application's own sections are left alone, near "seda" or not.
        try withFile(#"{"meta": {"owner": "x"}, "app": {"port": 80}}"#) { path in
            _ = try SedaConfiguration(file: path, environment: [:])
        }
        // With a seda section present, nothing is guessed.
        try withFile(#"{"seda": {"cpuThreads": 2}, "sedan": {"doors": 4}}"#) { path throws in
            #expect(try SedaConfiguration(file: path, environment: [:]).cpuThreads == 2)
        }
    }

    /// Invalid JSON said only "not valid JSON": now where, and what.
    @Test func invalidJSONNamesTheLineAndColumn() throws {
        let m = try loadFailure("{\n  \"seda\": {\n    \"cpuThreads\": 4,,\n  }\n}")
        #expect(m.contains("not valid JSON"), "\(m)")
        #expect(m.contains("line 3, column 21"), "\(m)")
        #expect(m.contains("found ','"), "\(m)")
        let unterminated = try loadFailure("{\"seda\": {\"cpuThreads\": 4}")
        #expect(
            unterminated.contains("line 1, column 27") && unterminated.contains("end of the text"), "\(unterminated)")
        let twice = try loadFailure("{\"seda\": {\"cpuThreads\": 4,\n \"cpuThreads\": 2}}")
        #expect(twice.contains("line 2, column 2") && twice.contains("\"cpuThreads\" appears twice"), "\(twice)")
        let leadingZero = try loadFailure("{\"seda\": {\"cpuThreads\": 04}}")
        #expect(leadingZero.contains("cannot start with 0"), "\(leadingZero)")
        // Escapes, surrogate pairs and numbers come through as JSON means them.
        try withFile(
            #"{"seda": {"stages": {"Caf\u00e9\ud83d\ude00": {"batchSize": 2}}}, "x": [1.5e3, -0, true, null]}"#
        ) { path throws in
            #expect(try SedaConfiguration(file: path, environment: [:]).stageNames == ["Café😀"])
        }
    }

    @Test func anUnknownEnvironmentVariableIsNamed() throws {
        let m = failure { _ = try SedaConfiguration(environment: ["SEDA_STAGES_HTTP_QUEUE_CAPACTY": "1"]) }
        #expect(m.contains("SEDA_STAGES_HTTP_QUEUE_CAPACTY"))
        #expect(m.contains("did you mean SEDA_STAGES_HTTP_QUEUE_CAPACITY?"))
        let n = failure { _ = try SedaConfiguration(environment: ["SEDA_CPU_THREAD": "1"]) }
        #expect(n.contains("SEDA_CPU_THREAD") && n.contains("did you mean SEDA_CPU_THREADS?"))
        // Lower case can never be looked up, so it is not a key either.
        let l = failure { _ = try SedaConfiguration(environment: ["SEDA_STAGES_http_THREADS": "1"]) }
        #expect(l.contains("SEDA_STAGES_http_THREADS"))
        #expect(failure { _ = try SedaConfiguration(environment: ["SEDA_": "1"]) }.contains("SEDA_"))
    }

    @Test func aConfiguredStageTheRuntimeLacksIsAnError() throws {
        try withFile(#"{"seda": {"stages": {"Htpp": {"batchSize": 4}}}}"#) { path in
            let c = try SedaConfiguration(file: path, environment: ["SEDA_STAGES_DISK_IO_THREADS": "2"])
            let m = failure { try c.checkStagesExist(["Http", "DiskIO"]) }
            #expect(m.contains("seda.stages.Htpp") && m.contains("'Http'"))
            #expect(failure { try c.checkStagesExist(["Htpp", "DiskIO"]) } == "")
            #expect(failure { try c.checkStagesExist(["Htpp", "Disk"]) }.contains("SEDA_STAGES_DISK_IO_THREADS"))
        }
    }

    // MARK: Bad values

    @Test func badValuesNameTheKeyAndTheValue() throws {
        let negative = try loadFailure(#"{"seda": {"stages": {"Http": {"threads": -1}}}}"#)
        #expect(negative.contains("seda.stages.Http.threads = -1"))
        #expect(negative.contains("expected an integer in 1...1024"))

        let zero = try loadFailure(#"{"seda": {"global": {"batchSize": 0}}}"#)
        #expect(zero.contains("seda.global.batchSize = 0") && zero.contains("1...1024"))

        let fast = try loadFailure(#"{"seda": {"stages": {"Http": {"threadManager": "fast"}}}}"#)
        #expect(fast.contains(#"seda.stages.Http.threadManager = "fast""#))
        #expect(fast.contains(#""shared" or "dedicated""#))

        let type = try loadFailure(#"{"seda": {"pinThreads": 1}}"#)
        #expect(type.contains("seda.pinThreads = 1") && type.contains("true or false"))
        #expect(try loadFailure(#"{"seda": {"cpuThreads": true}}"#).contains("seda.cpuThreads = true"))
        #expect(try loadFailure(#"{"seda": {"cpuThreads": "4"}}"#).contains(#"seda.cpuThreads = "4""#))
        #expect(try loadFailure(#"{"seda": {"cpuThreads": 2000}}"#).contains("seda.cpuThreads = 2000"))
        #expect(
            try loadFailure(#"{"seda": {"global": {"batchController": {"smoothConst": 1}}}}"#)
                .contains("from 0 up to, not including, 1"))
        #expect(
            try loadFailure(#"{"seda": {"stages": {"X": {"rtController": {"type": "multiclass"}}}}}"#)
                .contains(#"rtController.type = "multiclass""#))
        // A bad value in a file's stage fails at load, before any stage is added.
        #expect(
            try loadFailure(#"{"seda": {"stages": {"X": {"queueCapacity": 0}}}}"#)
                .contains("seda.stages.X.queueCapacity = 0"))
    }

    @Test func badEnvironmentValuesNameTheVariable() throws {
        let m = failure { _ = try SedaConfiguration(environment: ["SEDA_STAGES_HTTP_THREADS": "abc"]) }
        #expect(m.contains(#"SEDA_STAGES_HTTP_THREADS="abc""#))
        #expect(m.contains("expected an integer in 1...1024"))
        let b = failure { _ = try SedaConfiguration(environment: ["SEDA_PIN_THREADS": "maybe"]) }
        #expect(b.contains(#"SEDA_PIN_THREADS="maybe""#) && b.contains("seda.pinThreads"))
        let k = failure { _ = try SedaConfiguration(environment: ["SEDA_GLOBAL_THREAD_MANAGER": "fast"]) }
        #expect(k.contains(#"SEDA_GLOBAL_THREAD_MANAGER="fast""#))
    }

    @Test func badCodeValuesAreCaughtTheSameWay() {
        var code = SedaSettings()
        code.stages["Http"] = StageSettings(threads: -1)
        let m = failure { _ = try SedaConfiguration(code: code, environment: [:]) }
        #expect(m.contains("seda.stages.Http.threads = -1 (code)"))
        var global = SedaSettings()
        global.global.pinCPU = 1
        #expect(failure { _ = try SedaConfiguration(code: global, environment: [:]) }.contains("pinCPU"))
        var dotted = SedaSettings()
        dotted.stages["a.b"] = StageSettings(batchSize: 1)
        #expect(failure { _ = try SedaConfiguration(code: dotted, environment: [:]) }.contains("'a.b'"))
    }

    // MARK: Keys that do not fit the stage

    @Test func keysMustFitTheThreadManager() throws {
        let c = try SedaConfiguration(environment: [
            "SEDA_STAGES_CPU_THREADS": "4",
            "SEDA_STAGES_DISK_THREAD_MANAGER": "dedicated", "SEDA_STAGES_DISK_CONCURRENCY": "2",
        ])
        let cpu = failure { _ = try c.options(forStage: "Cpu") }
        #expect(cpu.contains("SEDA_STAGES_CPU_THREADS"))
        #expect(cpu.contains("applies to dedicated stages"))
        // With dedicated defaults from code, the same key is fine.
        #expect(
            try c.options(forStage: "Cpu", defaults: StageOptions(threadManager: .dedicated()))
                .threadManager == .dedicated(threads: 4))
        #expect(failure { _ = try c.options(forStage: "Disk") }.contains("applies to shared stages"))
    }

    @Test func crossKeyChecksNameBothKeys() throws {
        try withFile(#"{"seda": {"stages": {"A": {"threadManager": "dedicated", "threads": 4, "maxThreads": 2}}}}"#) {
            path in
            let c = try SedaConfiguration(file: path, environment: [:])
            let m = failure { _ = try c.options(forStage: "A") }
            #expect(m.contains("seda.stages.A.maxThreads = 2") && m.contains("seda.stages.A.threads = 4"))
        }
        let rt = try SedaConfiguration(environment: ["SEDA_STAGES_A_RT_CONTROLLER_ENABLE": "true"])
        #expect(failure { _ = try rt.settings(forStage: "A") }.contains("targetResponseTime"))
        let batch = try SedaConfiguration(environment: ["SEDA_STAGES_A_BATCH_CONTROLLER_MIN_BATCH": "100"])
        #expect(
            failure { _ = try batch.settings(forStage: "A", defaults: StageOptions(batchSize: 10)) }
                .contains("above its batchSize 10"))
    }

    // MARK: The runtime

    @Test func theRuntimeTakesItsSettingsFromTheConfiguration() throws {
        let c = try SedaConfiguration(
            code: SedaSettings(cpuThreads: 2),
            environment: [
                "SEDA_STAGES_WORK_QUEUE_CAPACITY": "8", "SEDA_STAGES_OK_QUEUE_CAPACITY": "8",
            ])
        let runtime = try Runtime(configuration: c)
        #expect(runtime.cpuThreads == 2)
        try runtime.addStage("Ok", handler: Ignore(), configuration: c)
        #expect(failure { try runtime.checkConfiguredStages(c) }.contains("SEDA_STAGES_WORK_QUEUE_CAPACITY"))
        try runtime.addStage(
            "Work", handler: Ignore(), configuration: c,
            defaults: StageOptions(threadManager: .dedicated(threads: 1)))
        try runtime.checkConfiguredStages(c)
        try runtime.shutdown()
    }

    @Test func addStageThrowsTheConfigurationError() throws {
        let c = try SedaConfiguration(environment: ["SEDA_STAGES_BAD_THREADS": "2"])
        let runtime = try Runtime(cpuThreads: 1)
        #expect(throws: SedaError.self) { try runtime.addStage("Bad", handler: Ignore(), configuration: c) }
        #expect(runtime.stageNames.isEmpty)
        try runtime.shutdown()
    }
}

private struct Hold: EventHandler {
    let open = Counter()
    func handle(_ batch: inout EventBatch<Probe>) throws {
        while open.value == 0 { usleep(200) }
    }
}

@Suite("Configuration: load conditioning")
struct ConditioningConfigurationTests {
    @Test func configuredSettingsBecomeOptions() throws {
        var settings = ResponseTimeControllerSettings()
        #expect(try ResponseTimeControllerOptions(settings) == nil)
        settings.enabled = true
        settings.targetResponseTime = .milliseconds(80)
        #expect(try ResponseTimeControllerOptions(settings)?.target == .milliseconds(80))
        settings.type = .pid
        #expect(throws: SedaError.self) { try ResponseTimeControllerOptions(settings) }
    }

    @Test func admissionAndDisciplineComeFromTheFile() throws {
        let json = """
            { "seda": { "stages": {
                "Guarded": { "threadManager": "dedicated", "batchSize": 1,
                             "admission": { "threshold": 2, "rateLimit": 1000, "burst": 50 },
                             "discipline": "codel", "codel": { "target": 10, "interval": 200 },
                             "priorityClasses": 2 } } } }
            """
        try withFile(json) { path in
            let c = try SedaConfiguration(file: path, environment: [:])
            let s = try c.settings(forStage: "Guarded", defaults: StageOptions())
            #expect(s.admission.threshold == 2)
            #expect(s.admission.rateLimit == 1000)
            #expect(s.admission.burst == 50)
            #expect(s.options.discipline == .codel(target: .milliseconds(10), interval: .milliseconds(200)))
            #expect(s.options.priorityClasses == 2)
            let runtime = try Runtime(configuration: c)
            let hold = Hold()
            let sink = try runtime.addStage("Guarded", handler: hold, configuration: c)
            try sink.enqueue(Probe())  // taken by the handler, which holds
            waitUntil("taken") { runtime.snapshot()[stage: "Guarded"]?.queueLength == 0 }
            try sink.enqueue(Probe())
            try sink.enqueue(Probe())
            #expect(throws: SedaError.rejected(.queueThreshold)) { try sink.enqueue(Probe()) }
            #expect(runtime.snapshot()[stage: "Guarded"]?.rejectedByReason["queueThreshold"] == 1)
            hold.open.add(1)
            try runtime.shutdown()
        }
    }

    @Test func inconsistentConditioningKeysAreErrors() throws {
        let burstOnly = """
            { "seda": { "stages": { "S": { "admission": { "burst": 5 } } } } }
            """
        let message = try withFile(burstOnly) { path in
            failure {
                _ = try SedaConfiguration(file: path, environment: [:]).settings(
                    forStage: "S", defaults: StageOptions())
            }
        }
        #expect(message.contains("seda.stages.S.admission.burst"), "\(message)")
        #expect(message.contains("rateLimit"), "\(message)")
        let codelOnly = """
            { "seda": { "stages": { "S": { "codel": { "target": 5 } } } } }
            """
        let message2 = try withFile(codelOnly) { path in
            failure {
                _ = try SedaConfiguration(file: path, environment: [:]).settings(
                    forStage: "S", defaults: StageOptions())
            }
        }
        #expect(message2.contains("codel"), "\(message2)")
        let message3 = try loadFailure(
            """
            { "seda": { "global": { "discipline": "lifo" } } }
            """)
        #expect(message3.contains("fifo"), "\(message3)")
    }
}

@Suite("Configuration: poller and disk engine")
struct BackendConfigurationTests {
    @Test func nothingSetLeavesThemToTheCore() throws {
        let c = try SedaConfiguration(environment: [:])
        #expect(c.poller == nil)
        #expect(c.diskEngine == nil)
    }

    /// seda.poller and seda.disk are SEDA_POLLER and SEDA_DISK in the
    /// environment: the variables the C core reads, through the same layers.
    @Test func environmentOverridesFileOverridesCode() throws {
        let code = SedaSettings(poller: .select, diskEngine: .threads)
        try withFile(#"{"seda": {"poller": "poll", "disk": "libaio"}}"#) { path in
            let all = try SedaConfiguration(
                code: code, file: path, environment: ["SEDA_POLLER": "EPOLL", "SEDA_DISK": "io_uring"])
            #expect(all.poller == .epoll)
            #expect(all.diskEngine == .ioUring)
            let noEnv = try SedaConfiguration(code: code, file: path, environment: [:])
            #expect(noEnv.poller == .poll)
            #expect(noEnv.diskEngine == .libaio)
            let codeOnly = try SedaConfiguration(code: code, environment: [:])
            #expect(codeOnly.poller == .select)
            #expect(codeOnly.diskEngine == .threads)
        }
        let spellings = try SedaConfiguration(environment: ["SEDA_POLLER": "uring", "SEDA_DISK": "default"])
        #expect(spellings.poller == .ioUring)
        #expect(spellings.diskEngine == .automatic)
    }

    @Test func badValuesNameTheKeyAndSuggestTheValue() throws {
        let poller = failure { _ = try SedaConfiguration(environment: ["SEDA_POLLER": "epol"]) }
        #expect(poller.contains(#"seda.poller"#) && poller.contains("SEDA_POLLER"), "\(poller)")
        #expect(poller.contains(#"did you mean "epoll"?"#), "\(poller)")
        let disk = try loadFailure(#"{"seda": {"disk": "aio"}}"#)
        #expect(disk.contains(#"seda.disk = "aio""#), "\(disk)")
        #expect(disk.contains(#""io_uring", "libaio" or "threads""#), "\(disk)")
        let typo = try loadFailure(#"{"seda": {"disk": "libaoi"}}"#)
        #expect(typo.contains(#"did you mean "libaio"?"#), "\(typo)")
        let type = try loadFailure(#"{"seda": {"poller": 3}}"#)
        #expect(type.contains("seda.poller = 3"), "\(type)")
        // A near miss of the key itself.
        let key = failure { _ = try SedaConfiguration(environment: ["SEDA_POLLERS": "poll"]) }
        #expect(key.contains("did you mean SEDA_POLLER?"), "\(key)")
        // The C core's own test knob is not a configuration key, and not refused.
        #expect(failure { _ = try SedaConfiguration(environment: ["SEDA_DISK_URING_SETUP": "defer"]) } == "")
    }

    /// The runtime and the file stage take the configured choice; an
    /// explicit argument wins over it.
    @Test func runtimeAndFileStageFollowTheConfiguration() throws {
        let c = try SedaConfiguration(
            code: SedaSettings(cpuThreads: 1, poller: .poll, diskEngine: .threads), environment: [:])
        let rt = try Runtime(configuration: c)
        defer { try? rt.shutdown(.drain) }
        #expect(rt.poller == .poll)
        let fs = try FileStage(runtime: rt, name: "cfg-disk", configuration: c)
        #expect(fs.engine == .threads)
        try fs.destroy()
        let explicit = try Runtime(configuration: c, poller: .select)
        defer { try? explicit.shutdown(.drain) }
        #expect(explicit.poller == .select)
        let chosen = try FileStage(runtime: explicit, name: "cfg-disk", configuration: c, engine: .ioUring)
        // io_uring, or whatever the kernel's fallback gives without a configuration.
        let reference = try FileStage(runtime: explicit, name: "ref-disk", engine: .ioUring)
        #expect(chosen.engine == reference.engine)
        try chosen.destroy()
        try reference.destroy()
    }
}
