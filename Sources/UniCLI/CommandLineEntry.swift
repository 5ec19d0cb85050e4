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

/// The shared `main` of `uni` and `unid`: runs a command and maps failures to
/// one-line messages and exit codes (2 for usage errors and bad values, 1 otherwise).
public enum CommandLineEntry {
    /// Parses the process arguments, runs the command, and exits.
    public static func main<Command: AsyncParsableCommand>(_ type: Command.Type, arguments: [String]? = nil) async -> Never {
        do {
            var command = try type.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch let error as UniError {
            StandardStreams.writeError(error.message)
            exit(error.code == .invalidArgument ? 2 : 1)
        } catch let exitCode as ExitCode {
            exit(exitCode.rawValue)
        } catch {
            let code = type.exitCode(for: error)
            if code == .success {
                print(type.fullMessage(for: error))
                exit(0)
            }
            // One line: the message names the bad value; --help has the rest.
            let message = type.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            StandardStreams.writeError(message)
            exit(code == .validationFailure ? 2 : code.rawValue)
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

extension CommandLineEntry {
    /// Moves `--data-dir X` / `--data-dir=X` written before the subcommand
    /// (`uni --data-dir /tmp/u ps`, as with docker) to just after it, where
    /// the subcommand's options are parsed.
    /// An unknown word in the subcommand's place comes first alone, so the
    /// parser's error names it rather than the option.
    public static func hoistingGlobalOptions(_ arguments: [String], subcommands: Set<String>, names: Set<String> = ["--data-dir"]) -> [String] {
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
        return [arguments[index]] + leading + arguments[(index + 1)...]
    }
}
