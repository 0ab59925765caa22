import CSedaCore
import Logging

/// Routes the C core's log hook (`seda_runtime_options.log`) into a
/// runtime's swift-log `Logger`, with the stage the message is about as
/// `stage` metadata. What the core reports this way: a handler that blocked
/// the shared threads (once per stage; every such batch is counted in
/// ``StageSnapshot/stalledBatches``), and the I/O layer's fallbacks and
/// resource limits.
///
/// Thread rules: the core calls it on whichever thread noticed, possibly
/// several at once; it only formats and hands the message to the logger.
/// The C runtime holds an unretained pointer to it: the ``Runtime`` keeps it
/// alive, and so does a ``RuntimeRelease`` that outlives the runtime object.
final class CoreLog: Sendable {
    let logger: Logger

    init(_ logger: Logger) { self.logger = logger }

    /// The pointer the C runtime's options carry, with ``hook``.
    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    /// The level a `SEDA_LOG_*` value maps to.
    static func level(_ cLevel: Int32) -> Logger.Level {
        switch cLevel {
        case Int32(SEDA_LOG_DEBUG.rawValue): .debug
        case Int32(SEDA_LOG_INFO.rawValue): .info
        case Int32(SEDA_LOG_WARNING.rawValue): .warning
        default: .error
        }
    }

    func log(level: Int32, stage: UnsafePointer<CChar>?, message: UnsafePointer<CChar>) {
        let level = Self.level(level)
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [:]
        if let stage { metadata["stage"] = "\(String(cString: stage))" }
        logger.log(level: level, "\(String(cString: message))", metadata: metadata)
    }

    /// The C function the runtime's options point at.
    static let hook: seda_log_fn = { ctx, level, stage, message in
        guard let ctx, let message else { return }
        let log = Unmanaged<CoreLog>.fromOpaque(ctx).takeUnretainedValue()
        log.log(level: level, stage: stage, message: message)
    }
}
