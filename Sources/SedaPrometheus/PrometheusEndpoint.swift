import Prometheus
import SedaMetrics

/// A Prometheus registry for an application's metrics endpoint: give
/// ``factory`` to `StageMetricsExporter` (or bootstrap `MetricsSystem`
/// with it) and serve ``render()`` as `text/plain; version=0.0.4`.
public final class PrometheusEndpoint: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    public init() {
        registry = PrometheusCollectorRegistry()
        factory = PrometheusMetricsFactory(registry: registry)
    }

    /// The exposition text of every metric in the registry.
    public func render() -> String { registry.emitToString() }
}
