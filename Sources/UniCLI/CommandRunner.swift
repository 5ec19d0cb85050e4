import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import UniCore

/// Runs one parsed command for the `main` of `uni`, `uni-otel` and `unid`,
/// and maps its failure to a one-line message and an exit code (2 for
/// usage errors and bad values, 1 otherwise).
public enum CommandRunner {
    /// Parses `arguments` (the process's when `nil`), runs the command on
    /// the calling thread, and exits. For synchronous commands (`uni`): no
    /// Swift concurrency runtime is started.
    public static func synchronousMain<Command: ParsableCommand>(_ type: Command.Type, arguments: [String]? = nil) -> Never {
        do {
            var command = try type.parseAsRoot(arguments)
            try command.run()
            Glibc.exit(0)
        } catch {
            exit(for: error, of: type, arguments: arguments)
        }
    }

    /// Parses `arguments`, runs the async command (`unid`), and exits.
    public static func main<Command: AsyncParsableCommand>(_ type: Command.Type, arguments: [String]? = nil) async -> Never {
        await main(type as any ParsableCommand.Type, arguments: arguments) { command in
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        }
    }

    /// Parses `arguments` (the process's when `nil`), hands the command to
    /// `execute` (which runs it, e.g. inside a span), and exits.
    public static func main(_ type: any ParsableCommand.Type, arguments: [String]? = nil,
                            execute: (inout any ParsableCommand) async throws -> Void) async -> Never {
        do {
            var command = try type.parseAsRoot(arguments)
            try await execute(&command)
            Glibc.exit(0)
        } catch {
            exit(for: error, of: type, arguments: arguments)
        }
    }

    /// Prints what ``outcome(for:of:)`` says and exits with its code.
    private static func exit(for error: any Error, of type: any ParsableCommand.Type, arguments: [String]?) -> Never {
        let outcome = outcome(for: error, of: type, arguments: arguments ?? Array(CommandLine.arguments.dropFirst()))
        if let output = outcome.standardOutput { print(output) }
        if let message = outcome.errorMessage { StandardStreams.writeError(message) }
        Glibc.exit(outcome.exitCode)
    }

    /// What a failed command prints and its exit code: one line on
    /// standard error (`error: <message>`) and 2 for usage errors and bad
    /// values, 1 for other failures; `--help` and `--version` print to
    /// standard output and exit 0.
    /// A first word that names no command gets the list of commands.
    static func outcome(for error: any Error, of type: any ParsableCommand.Type, arguments: [String] = []) -> (errorMessage: String?, standardOutput: String?, exitCode: Int32) {
        switch error {
        case let error as UniError:
            return (error.message, nil, error.code == .invalidArgument ? 2 : 1)
        case let exitCode as ExitCode:
            return (nil, nil, exitCode.rawValue)
        default:
            let code = type.exitCode(for: error)
            if code == .success { return (nil, type.fullMessage(for: error), 0) }
            // Only on this failure path: the names cost every command's configuration.
            let commands = type.configuration.subcommands.map { $0._commandName }
            if let first = arguments.first, !first.hasPrefix("-"), !commands.isEmpty, !commands.contains(first), first != "help" {
                return ("unknown command '\(first.escapingControlCharacters)': the commands are \(commands.joined(separator: ", ")) (uni --help tells more)", nil, 2)
            }
            // One line: the message names the bad value; --help has the rest.
            var message = type.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            // ArgumentParser names the word but not what the command takes.
            if message.hasPrefix("Unexpected argument"), let first = arguments.first, commands.contains(first) {
                let path = arguments.prefix(2).count == 2 && (type.configuration.subcommands.first { $0._commandName == first }?
                    .configuration.subcommands.contains { $0._commandName == arguments[1] } ?? false) ? "\(first) \(arguments[1])" : first
                message += ": `\(type._commandName) \(path) --help` shows what it takes"
            }
            return (message, nil, code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

/// Parses a flag value into a `RawRepresentable` choice, naming the allowed values.
public func parseChoice<Choice: RawRepresentable & CaseIterable>(_ text: String, flag: String, as type: Choice.Type) throws -> Choice where Choice.RawValue == String {
    guard let value = Choice(rawValue: text) else {
        throw UniError.invalid("invalid \(flag) '\(text)': expected one of \(Choice.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return value
}

extension CommandRunner {
    /// Moves `--data-dir X` / `--data-dir=X` written before the subcommand
    /// (`uni --data-dir /tmp/u ps`, as with docker) to just after it, where
    /// the subcommand's options are parsed.
    /// An unknown word in the subcommand's place comes first alone, so the
    /// parser's error names it rather than the option.
    /// `nested` names the subcommands of command groups (`image` ->
    /// `import`, `ls`): the options go after the whole path.
    public static func hoistingGlobalOptions(_ arguments: [String], subcommands: Set<String>, nested: [String: Set<String>] = [:],
                                             names: Set<String> = ["--data-dir"]) -> [String] {
        var leading: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if names.contains(argument), index + 1 < arguments.endIndex {
                leading += [argument, arguments[index + 1]]
                index += 2
            } else if let name = argument.split(separator: "=", maxSplits: 1).first, names.contains(String(name)), argument.contains("=") {
                leading.append(argument)
                index += 1
            } else {
                break
            }
        }
        guard !leading.isEmpty, index < arguments.endIndex else { return arguments }
        guard subcommands.contains(arguments[index]) else { return Array(arguments[index...]) }
        if let children = nested[arguments[index]], index + 1 < arguments.endIndex, children.contains(arguments[index + 1]) {
            return [arguments[index], arguments[index + 1]] + leading + arguments[(index + 2)...]
        }
        return [arguments[index]] + leading + arguments[(index + 1)...]
    }
}
