import HTTPTypes
import Hummingbird
import Tracing

/// Extracts the W3C trace context (`traceparent`, `tracestate`) of a request
/// with `tracer`'s propagator and runs the handler inside it, so the daemon's
/// `vm.lifecycle` spans join the caller's trace (`uni` sends its own).
public struct TraceContextMiddleware<Context: RequestContext>: RouterMiddleware {
    private let tracer: any Tracer

    /// A middleware extracting with `tracer`.
    public init(tracer: any Tracer) { self.tracer = tracer }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.headers[HTTPField.Name("traceparent")!] != nil else { return try await next(request, context) }
        var serviceContext = ServiceContext.current ?? .topLevel
        tracer.extract(request.headers, into: &serviceContext, using: HTTPFieldsExtractor())
        return try await ServiceContext.$current.withValue(serviceContext) { try await next(request, context) }
    }
}

/// Reads propagation headers from `HTTPFields`.
public struct HTTPFieldsExtractor: Extractor {
    /// Creates the extractor.
    public init() {}

    public func extract(key: String, from carrier: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { carrier[$0] }
    }
}
