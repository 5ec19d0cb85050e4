import CoreMetrics
import Prometheus
import UniKit

/// A swift-metrics factory over a `PrometheusCollectorRegistry` that gives
/// every metric its HELP text from ``MetricNames/help`` (swift-prometheus's
/// own factory registers them without one).
public struct PrometheusHelpFactory: MetricsFactory {
    /// The registry the metrics live in; render it with `emit(into:)`.
    public let registry: PrometheusCollectorRegistry
    private let help: [String: String]

    /// A factory over `registry`.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), help: [String: String] = MetricNames.help) {
        self.registry = registry
        self.help = help
    }

    private func helpText(_ name: String) -> String { help[name] ?? "" }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: helpText(label))
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: helpText(label))
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if aggregate {
            return registry.makeValueHistogram(name: label, labels: dimensions, buckets: [0.001, 0.01, 0.1, 1, 10, 100], help: helpText(label))
        }
        return registry.makeGauge(name: label, labels: dimensions, help: helpText(label))
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(name: label, labels: dimensions, help: helpText(label))
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = label == MetricNames.vmStartDuration ? MetricNames.startDurationBuckets
            : [.milliseconds(5), .milliseconds(50), .milliseconds(500), .seconds(5), .seconds(50)]
        return registry.makeDurationHistogram(name: label, labels: dimensions, buckets: buckets, help: helpText(label))
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        switch handler {
        case let gauge as Prometheus.Gauge: registry.unregisterGauge(gauge)
        case let histogram as ValueHistogram: registry.unregisterValueHistogram(histogram)
        default: break
        }
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
