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
}
