import Logging

extension Runtime {
    /// A handler on the shared threads ran far longer than its stage's usual
    /// service time: every other stage on those threads waited behind it.
    /// Logs a warning naming the stage and saying what to do instead, the
    /// first time for each stage (a stage that blocks does so again: one
    /// line, not a flood); every report is counted.
    ///
    /// The C core notices (it times every batch already) and reports it
    /// here through its log hook, on the thread that noticed.
    func handlerBlocked(stage name: String, running: Duration, usual: Duration?) {
        let first = blockedHandlers.withLock { counts in
            defer { counts[name, default: 0] += 1 }
            return counts[name] == nil
        }
        guard first else { return }
        var metadata: Logger.Metadata = ["stage": "\(name)", "running": "\(formatDuration(running))"]
        if let usual { metadata["usual"] = "\(formatDuration(usual))" }
        let message =
            "the handler of stage '\(name)' blocked a shared thread: every stage on the shared "
            + "threads waited behind it. Give a stage that blocks a dedicated pool (StageOptions.threadManager "
            + "= .dedicated), or schedule a timer instead of sleeping. Logged once per stage."
        logger.warning("\(message)", metadata: metadata)
    }

    /// How often each stage's handler was reported blocking a shared thread.
    var blockedHandlerReports: [String: Int] { blockedHandlers.withLock { $0 } }
}
