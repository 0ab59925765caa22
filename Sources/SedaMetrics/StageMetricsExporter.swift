import CoreMetrics
import Seda

/// Publishes stage snapshots through swift-metrics: counters for events
/// (enqueued, processed, rejected by reason, handed back, handler errors)
/// and for batches that stalled the shared threads
/// (`seda_stage_stalled_batches_total`),
/// gauges for queue length, threads and latency quantiles and, for a stage
/// guarded by a response-time controller, its admission rate
/// (`seda_stage_admission_rate`, -1 while unlimited), measured p90
/// (`seda_stage_response_time_p90_seconds`) and target
/// (`seda_stage_response_time_target_seconds`); each with a `stage`
/// dimension. Call ``export(_:)`` periodically (e.g. every second).
///
/// Thread rules: any thread; exports are serialised.
public final class StageMetricsExporter: @unchecked Sendable {
    // @unchecked: `last` is guarded by `lock`.
    private let factory: any MetricsFactory
    private let lock = Lock<[String: StageSnapshot]>([:])

    /// `factory`: where metrics go (default: the bootstrapped `MetricsSystem`).
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    public func export(_ snapshot: RuntimeSnapshot) {
        lock.withLock { last in
            for s in snapshot.stages {
                let prev = last[s.name]
                let dims = [("stage", s.name)]
                func count(_ label: String, _ now: UInt64, _ before: UInt64?, _ extra: [(String, String)] = []) {
                    let delta = now &- (before ?? 0)
                    if delta > 0, delta < UInt64(Int64.max) {
                        Counter(label: label, dimensions: dims + extra, factory: factory).increment(by: Int64(delta))
                    }
                }
                count("seda_stage_enqueued_total", s.enqueued, prev?.enqueued)
                count("seda_stage_processed_total", s.processed, prev?.processed)
                count("seda_stage_handed_back_total", s.handedBack, prev?.handedBack)
                count("seda_stage_dropped_total", s.dropped, prev?.dropped)
                count("seda_stage_rejected_total", s.rejectedFull, prev?.rejectedFull, [("reason", "full")])
                count("seda_stage_rejected_total", s.rejectedClosed, prev?.rejectedClosed, [("reason", "closed")])
                for (reason, n) in s.rejectedByReason {
                    count("seda_stage_rejected_total", n, prev?.rejectedByReason[reason], [("reason", reason)])
                }
                count("seda_stage_handler_errors_total", s.handlerErrors, prev?.handlerErrors)
                count("seda_stage_stalled_batches_total", s.stalledBatches, prev?.stalledBatches)
                Gauge(label: "seda_stage_queue_length", dimensions: dims, factory: factory).record(
                    Double(s.queueLength))
                Gauge(label: "seda_stage_threads", dimensions: dims, factory: factory).record(Double(s.threads))
                for (q, qd, st) in [
                    ("0.5", s.queueDelay.p50Nanoseconds, s.serviceTime.p50Nanoseconds),
                    ("0.9", s.queueDelay.p90Nanoseconds, s.serviceTime.p90Nanoseconds),
                    ("0.99", s.queueDelay.p99Nanoseconds, s.serviceTime.p99Nanoseconds),
                ] {
                    Gauge(
                        label: "seda_stage_queue_delay_seconds", dimensions: dims + [("quantile", q)],
                        factory: factory
                    ).record(Double(qd) / 1e9)
                    Gauge(
                        label: "seda_stage_service_time_seconds", dimensions: dims + [("quantile", q)],
                        factory: factory
                    ).record(Double(st) / 1e9)
                }
                if let rt = s.responseTime {
                    // Why requests are refused: the admitted rate against
                    // the measured p90 and its target (-1: unlimited rate).
                    Gauge(label: "seda_stage_admission_rate", dimensions: dims, factory: factory)
                        .record(rt.rate.isFinite ? rt.rate : -1)
                    Gauge(label: "seda_stage_response_time_target_seconds", dimensions: dims, factory: factory)
                        .record(seconds(rt.target))
                    if let p90 = rt.lastP90 {
                        Gauge(label: "seda_stage_response_time_p90_seconds", dimensions: dims, factory: factory)
                            .record(seconds(p90))
                    }
                }
                last[s.name] = s
            }
        }
    }
}

private func seconds(_ d: Duration) -> Double {
    let (s, a) = d.components
    return Double(s) + Double(a) / 1e18
}
