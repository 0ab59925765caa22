import Logging
import SedaServiceLifecycle
import ServiceLifecycle
import Testing

@testable import Seda

@Suite("Runtime as a Service")
struct ServiceTests {
    /// A graceful shutdown of the ServiceGroup (what SIGTERM triggers) drains
    /// the runtime: what was accepted is processed, then enqueues fail.
    @Test func gracefulShutdownDrains() async throws {
        let life = Life()
        let runtime = try Runtime()
        let recorder = Recorder()
        let sink = try runtime.addStage(
            "work", handler: recorder,
            options: StageOptions(threadManager: .dedicated(threads: 1)))
        for i in 0..<1000 { try sink.enqueue(Job(i, life)) }
        let group = ServiceGroup(
            services: [runtime], gracefulShutdownSignals: [.sigterm],
            logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(recorder.received.value == 1000, "drained before run() returned")
        #expect(throws: SedaError.closed) { try sink.enqueue(Job(-1, life)) }
        #expect(life.balanced)
    }
}
