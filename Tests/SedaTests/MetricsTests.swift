import SedaMetrics
import SedaPrometheus
import Testing

@testable import Seda

@Suite("Metrics export")
struct MetricsTests {
    @Test func metricsReachPrometheus() throws {
        let life = Life()
        let runtime = try Runtime()
        let recorder = Recorder()
        let sink = try runtime.addStage("metered", handler: recorder)
        for i in 0..<10 { try sink.enqueue(Job(i, life)) }
        waitUntil("processed") { runtime.snapshot()[stage: "metered"]?.processed == 10 }
        let endpoint = PrometheusEndpoint()
        let exporter = StageMetricsExporter(factory: endpoint.factory)
        exporter.export(runtime.snapshot())
        let text = endpoint.render()
        #expect(text.contains("seda_stage_processed_total{stage=\"metered\"} 10"))
        #expect(text.contains("seda_stage_queue_length{stage=\"metered\"} 0"))
        try runtime.shutdown()
    }

    /// Batches that blocked the shared threads are a counter: an operator
    /// sees which stage's handler should have a dedicated pool.
    @Test func stalledBatchesAreExported() throws {
        let clock = SedaClock.manual()
        let runtime = try Runtime(clock: clock)
        let blocker = SharedThreadBlocker()
        let sink = try runtime.addStage("sleepy", handler: blocker)
        try blocker.block(Job(1, Life()), in: sink, runtime: runtime, clock: clock)
        let endpoint = PrometheusEndpoint()
        StageMetricsExporter(factory: endpoint.factory).export(runtime.snapshot())
        #expect(endpoint.render().contains("seda_stage_stalled_batches_total{stage=\"sleepy\"} 1"))
        try runtime.shutdown()
    }

    /// The response-time controller's state reaches the metrics: an
    /// operator sees the admission rate next to the p90 and its target.
    @Test func responseTimeStateIsExported() throws {
        let runtime = try Runtime(clock: .manual())
        let rtc = ResponseTimeController<Job>(target: .milliseconds(50))
        _ = try runtime.addStage("guarded", handler: DiscardJobs(), admission: rtc)
        _ = try runtime.addStage("plain", handler: DiscardJobs())
        let endpoint = PrometheusEndpoint()
        StageMetricsExporter(factory: endpoint.factory).export(runtime.snapshot())
        let text = endpoint.render()
        #expect(text.contains("seda_stage_admission_rate{stage=\"guarded\"} -1"), "unlimited until measured")
        #expect(text.contains("seda_stage_response_time_target_seconds{stage=\"guarded\"} 0.05"))
        #expect(!text.contains("seda_stage_admission_rate{stage=\"plain\"}"))
        try runtime.shutdown()
    }
}
