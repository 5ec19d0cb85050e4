import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tracing
import UniKit

/// OTLP/gRPC span export through swift-otel, for `unid` and `uni`.
///
/// Off unless an endpoint is given (`--trace-addr`) or the standard
/// `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
/// set; off means no exporter, no connection and a no-op tracer. Spans are
/// batched and exported in the background, so a collector that is down or
/// slow never slows a VM operation; its errors are logged at most once a minute.
public enum TraceExport {
    /// A tracer and the service that exports its spans, or `nil` when export is off.
    public struct Backend: Sendable {
        /// The tracer to hand to `VMManager` and `InstrumentationSystem`.
        public let tracer: any Tracer
        /// Runs the exporter; shut it down gracefully to flush pending spans.
        public let service: any Service
    }

    /// Whether export is on for `address` and `environment`.
    public static func isEnabled(address: String?, environment: EnvironmentLookup = .process) -> Bool {
        TraceExportSwitch.isOn(address: address, environment: environment)
    }

    /// `localhost:4317` -> `http://localhost:4317`; a URL stays as it is.
    public static func endpointURL(_ address: String) -> String {
        address.contains("://") ? address : "http://\(address)"
    }

    /// Makes the backend, or returns `nil` when export is off.
    /// - Parameters:
    ///   - serviceName: `service.name` of the resource (`unid`, `uni`).
    ///   - address: `--trace-addr`; empty or `nil` defers to the `OTEL_*` variables.
    ///   - logger: where exporter errors go (rate limited to one a minute).
    ///   - exportTimeout: how long one export may take; it also bounds how
    ///     long a flush at shutdown waits for a collector that is down.
    /// - Throws: ``UniError`` (`invalidArgument`) when swift-otel rejects the configuration.
    public static func makeBackend(serviceName: String, address: String?, logger: Logger, exportTimeout: Duration = .seconds(5)) throws -> Backend? {
        guard isEnabled(address: address) else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.resourceAttributes = [
            "service.version": UniVersion.current,
            "service.instance.id": "\(serviceName)-\(ProcessInfo.processInfo.hostName)-\(getpid())",
        ]
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.protocol = .grpc
        configuration.traces.otlpExporter.timeout = exportTimeout
        configuration.traces.batchSpanProcessor.scheduleDelay = .milliseconds(500)
        if let address, !address.isEmpty { configuration.traces.otlpExporter.endpoint = endpointURL(address) }
        var diagnostics = logger
        diagnostics.handler = RateLimitedLogHandler(wrapping: logger.handler)
        configuration.diagnosticLogger = .custom(diagnostics)
        configuration.diagnosticLogLevel = .error
        do {
            let backend = try OTel.makeTracingBackend(configuration: configuration)
            return Backend(tracer: backend.factory, service: backend.service)
        } catch {
            throw UniError.invalid("cannot set up trace export to '\(address ?? "")': \(error)")
        }
    }
}
