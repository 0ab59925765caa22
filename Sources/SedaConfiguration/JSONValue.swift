import Configuration
import Seda

/// A JSON value that keeps `true` apart from `1`, from ``JSONParser`` or
/// from settings made in code.
indirect enum JSONValue: Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

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
    /// is a path (as swift-configuration's JSON provider reads it). An empty object adds nothing, except
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
            flatten(
                member, path + name.split(separator: ".", omittingEmptySubsequences: false).map(String.init),
                into: &out)
        }
    }
}

extension Duration {
    /// Whole milliseconds, truncated (saturating, as every conversion).
    var wholeMilliseconds: Int { Int(saturatingNanoseconds / 1_000_000) }

    /// Milliseconds with their fraction (saturating).
    var milliseconds: Double { Double(saturatingNanoseconds) / 1e6 }
}
