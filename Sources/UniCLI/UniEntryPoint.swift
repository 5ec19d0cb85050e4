#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import UniCore
#if canImport(Glibc)
import Glibc
#endif

/// The entry point of `uni` and `uni-otel`: what their `main.swift` calls.
///
/// Trace export lives in a second executable so that `uni` stays small:
/// linking swift-otel (gRPC, HTTP/2, protobuf) triples the CLI's start-up
/// time, which is on the path of every command (`docs/performance.md`).
/// When export is asked for (`--trace-addr`, `OTEL_EXPORTER_OTLP_ENDPOINT`
/// or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `uni` replaces itself with the
/// `uni-otel` installed next to it, with the same arguments.
public enum UniEntryPoint {
    /// The name of the executable that exports `uni`'s spans.
    public static let tracingExecutableName = "uni-otel"

    /// Parses `arguments` (without the program name), runs the command on
    /// this thread, and exits.
    public static func main(arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        CommandRunner.synchronousMain(UniCommand.self, arguments: hoisted(arguments))
    }

    /// Parses `arguments`, runs the command through `interceptor`, and exits.
    public static func main(arguments: [String] = Array(CommandLine.arguments.dropFirst()), interceptor: any CommandInterceptor) async -> Never {
        await CommandRunner.main(UniCommand.self, arguments: hoisted(arguments)) { command in
            let name = type(of: command)._commandName
            let address = (command as? any UniSubcommand)?.global.traceAddr
            try await interceptor.run(command: name, traceAddress: address) { try command.run() }
        }
    }

    private static func hoisted(_ arguments: [String]) -> [String] {
        // The subcommand names cost every command's configuration: only
        // when there is something to hoist.
        guard let first = arguments.first, first.hasPrefix("--data-dir") || first.hasPrefix("--trace-addr") else { return arguments }
        let subcommands = UniCommand.configuration.subcommands
        var nested: [String: Set<String>] = [:]
        for command in subcommands where !command.configuration.subcommands.isEmpty {
            nested[command._commandName] = Set(command.configuration.subcommands.map { $0._commandName })
        }
        return CommandRunner.hoistingGlobalOptions(arguments, subcommands: Set(subcommands.map { $0._commandName }), nested: nested,
                                                   names: ["--data-dir", "--trace-addr"])
    }

    /// Whether `arguments` or `environment` ask for trace export.
    public static func traceExportRequested(arguments: [String], environment: EnvironmentLookup = .process) -> Bool {
        var address: String?
        for (index, argument) in arguments.enumerated() {
            if argument == "--" { break }
            if argument == "--trace-addr", index + 1 < arguments.count {
                address = arguments[index + 1]
            } else if argument.hasPrefix("--trace-addr=") {
                address = String(argument.dropFirst("--trace-addr=".count))
            }
        }
        return TraceExportSwitch.isOn(address: address, environment: environment)
    }

    /// Replaces the process with `uni-otel` from this executable's folder.
    /// Returns only when that is impossible, after a one-line warning: the
    /// command then runs without its span rather than not at all.
    public static func execTracingExecutable(arguments: [String]) {
        let directory = Self.executablePath().deletingLastPathComponent
        let path = directory + "/" + tracingExecutableName
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        execv(path, argv)
        let reason = String(cString: strerror(errno))
        StandardStreams.writeWarning("trace export needs \(path) (\(reason)); running without it")
    }

    private static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
