import Foundation
import Instrumentation
import Logging
import ServiceLifecycle
import Tracing
import UniCLI
import UniCore
import UniHTTP

/// `uni-otel`: the `uni` CLI linked with swift-otel. `uni` hands itself
/// over to it when trace export is asked for (`--trace-addr` or the
/// `OTEL_EXPORTER_OTLP_*` variables); a command then runs inside a client
/// span `uni <command>` whose W3C context every API call carries
/// (`traceparent`), so one trace shows the CLI command and the daemon's work.
struct SpanPerCommand: CommandInterceptor {
    /// Runs `body` traced when export is on, plainly otherwise; flushes the
    /// span before returning.
    func run(command: String, traceAddress address: String?, _ body: () throws -> Void) async throws {
        var logger = Logger(label: "uni")
        logger.logLevel = .error
        // A CLI must not hang on a collector that is down: its one span gets 1 s.
        guard let backend = try TraceExport.makeBackend(serviceName: "uni", address: address, logger: logger, exportTimeout: .seconds(1)) else {
            return try body()
        }
        InstrumentationSystem.bootstrap(backend.tracer)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: backend.service)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let span = backend.tracer.startSpan("uni \(command)", context: .topLevel, ofKind: .client)
            var failure: (any Error)?
            do {
                try ServiceContext.$current.withValue(span.context) { try body() }
            } catch {
                failure = error
                if let error = error as? UniError {
                    span.recordError(error)
                    span.attributes["error.type"] = error.code.description
                    span.setStatus(SpanStatus(code: .error, message: error.message))
                }
            }
            span.end()
            await group.triggerGracefulShutdown()
            // The exporter can fail (a collector that is down or refuses
            // the connection): that costs the span, never the command's
            // own outcome or message.
            do {
                try await tasks.waitForAll()
            } catch {
                logger.debug("span export failed", metadata: ["error": "\(error)"])
            }
            if let failure { throw failure }
        }
    }
}

await UniEntryPoint.main(interceptor: SpanPerCommand())
