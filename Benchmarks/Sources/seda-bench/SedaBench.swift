import ArgumentParser

/// `seda-bench`: Seda's benchmarks. Each prints a table with Seda beside its
/// anchor, measured in one run on this machine, and the ratio.
@main
struct SedaBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seda-bench",
        abstract: "Measure Seda beside its anchors, side by side in one run.",
        subcommands: [
            QueueBench.self, PipelineBench.self, TimerBench.self, GovernorBench.self, OverloadBench.self,
            PollBench.self, DiskBench.self, HTTPPathBench.self, GnutellaBench.self, EchoBench.self,
            AsocketBench.self, ServeBench.self, HTTPBench.self,
        ]
    )
}
