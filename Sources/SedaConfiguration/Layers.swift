import Configuration
import Seda

/// Where a value was set.
enum Source: Sendable, Equatable {
    case environment
    case file(String)
    case code

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
struct Layer: Sendable {
    let source: Source
    let provider: any ConfigProvider
    let raw: [String: String]

    /// The key as this layer's provider spells it.
    func encodedName(_ key: [String]) -> String {
        if source == .environment,
            let encoded = try? provider.value(forKey: AbsoluteConfigKey(key), type: .string).encodedKey
        {
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
func aliasing<P: ConfigProvider>(_ provider: P) -> any ConfigProvider {
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
