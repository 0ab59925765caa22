import Configuration
import Seda

/// A value read and range-checked, with where it came from for messages.
struct Setting {
    enum Value {
        case int(Int)
        case bool(Bool)
        case double(Double)
        case string(String)
    }
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
    static func read(
        _ spec: KeySpec, at prefix: [String], _ reader: ConfigReader,
        _ layers: [Layer]
    ) throws(SedaError) -> Setting? {
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
                // A whole number in the file or in code is a number too.
                let v =
                    try (try? reader.requiredInt(forKey: configKey)).map(Double.init)
                    ?? reader.requiredDouble(forKey: configKey)
                guard isValid(v) else { throw bad }
                value = .double(v)
            case .choice(let choices, _):
                let v = try reader.requiredString(forKey: configKey)
                guard let canonical = choices[v.lowercased()] else {
                    if let guess = Keys.closest(to: v, in: Array(choices.keys)) {
                        throw SedaError.invalidConfiguration(
                            "\(origin): expected \(spec.kind.expected); did you mean \"\(choices[guess]!)\"?")
                    }
                    throw bad
                }
                value = .string(canonical)
            }
        } catch let e as SedaError {
            throw e
        } catch {
            throw bad
        }
        return Setting(value: value, origin: origin)
    }

    /// Checks every `SEDA_` variable against the keys; returns the stage
    /// variables with the stage-name parts each can mean (longest key first).
    static func checkEnvironment(
        _ env: [String: String],
        layer: Layer
    ) throws(SedaError) -> [(name: String, stageParts: [String])] {
        var fixed: [String: KeySpec] = [:]
        let runtimeNames = Keys.runtime.map { layer.encodedName(["seda"] + $0.components) }
        for (spec, name) in zip(Keys.runtime, runtimeNames) { fixed[name] = spec }
        for spec in Keys.global {
            fixed[layer.encodedName(Keys.globalPrefix + spec.components)] = spec
            if let a = spec.alias {
                fixed[layer.encodedName(Keys.globalPrefix + a.split(separator: ".").map(String.init))] = spec
            }
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
            if fixed[name] != nil || Keys.coreVariables.contains(name) { continue }
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
