/// Runs each `uni` command on behalf of ``UniEntryPoint``, e.g. inside the
/// command's span.
///
/// `uni` itself runs commands plainly; `uni-otel`, the same CLI linked with
/// the OTLP exporter, passes an interceptor that opens the `uni <command>` span.
public protocol CommandInterceptor: Sendable {
    /// Runs `body`, the command named `command`; `traceAddress` is its `--trace-addr`.
    func run(command: String, traceAddress: String?, _ body: () throws -> Void) async throws
}
