import UniCLI

/// `uni`: a docker-like CLI over unid's API (the commands are in UniCLI).
/// It links neither SwiftNIO nor swift-otel, so that it starts in ~2 ms;
/// trace export hands over to `uni-otel` (see ``UniEntryPoint``).
let arguments = Array(CommandLine.arguments.dropFirst())
if UniEntryPoint.traceExportRequested(arguments: arguments) {
    UniEntryPoint.execTracingExecutable(arguments: arguments)
}
UniEntryPoint.main(arguments: arguments)
