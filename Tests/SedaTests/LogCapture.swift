import Logging

@testable import Seda

/// A swift-log handler that keeps every message, for tests that check what
/// Seda logs (and how often).
final class LogCapture: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let entries = Lock<[Entry]>([])

    /// A logger writing here, at every level.
    var logger: Logger {
        var l = Logger(label: "test") { _ in Handler(capture: self) }
        l.logLevel = .trace
        return l
    }

    var all: [Entry] { entries.withLock { $0 } }

    /// The entries whose message contains `text`.
    func matching(_ text: String) -> [Entry] { all.filter { $0.message.contains(text) } }

    fileprivate func add(_ e: Entry) { entries.withLock { $0.append(e) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var m = metadata
            if let extra = event.metadata { m.merge(extra) { _, new in new } }
            capture.add(Entry(level: event.level, message: "\(event.message)", metadata: m))
        }
    }
}
