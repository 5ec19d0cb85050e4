import Foundation
import Testing
@testable import UniCLI
import UniKit
import UniKitTesting

/// `uni` commands parsed and run in-process, as `uni`'s `main` would, up to
/// the message and exit code it would print; none of these reach a daemon.
@Suite("uni's usage errors")
struct CLICommandTests {
    /// The `error:` line and exit code of `uni arguments...`.
    static func uni(_ arguments: [String]) -> (message: String?, exitCode: Int32) {
        do {
            var command = try UniCommand.parseAsRoot(arguments + ["--data-dir", "/nonexistent-uni"])
            try command.run()
            return (nil, 0)
        } catch {
            let outcome = CommandRunner.outcome(for: error, of: UniCommand.self)
            return (outcome.errorMessage, outcome.exitCode)
        }
    }

    @Test("values that look negative reach the check that names them", arguments: [
        (["run", "--memory", "-1", "K"], "invalid memory '-1': expected a whole number with an optional unit K, M, G or T (for example 64M)"),
        (["run", "--cpus", "-2", "K"], "invalid cpus '-2': must be a whole number from 1 to 64"),
        (["logs", "--tail", "-5", "x"], "invalid --tail '-5': expected a whole number of lines, 0 or more"),
        (["stop", "--timeout", "-1s", "x"], "invalid --timeout '-1s': expected a duration such as 10s, 500ms or 2m (at most 24h)"),
        (["stop", "-t", "-1s", "x"], "invalid --timeout '-1s': expected a duration such as 10s, 500ms or 2m (at most 24h)"),
        (["inspect", ""], "invalid vm reference '': give a name, id or id prefix"),
        (["logs", ""], "invalid vm reference '': give a name, id or id prefix"),
        (["stats", "--watch", "--interval", "-3s"], "invalid --interval '-3s': expected a duration such as 10s, 500ms or 2m (at most 24h)"),
        (["stats", "--watch", "--interval", "10ms"], "invalid --interval '10ms': must be at least 100ms"),
        (["stats", "--interval", "5s"], "--interval '5s' applies to --watch only"),
        (["stats", ""], "invalid vm reference '': give a name, id or id prefix"),
        (["run", ""], "missing image: give the path of a kernel or disk image"),
    ])
    func negativeLookingValues(arguments: [String], message: String) {
        let result = Self.uni(arguments)
        #expect(result.message == message)
        #expect(result.exitCode == 2)
    }

    @Test("a kernel command line that starts with '-' is a value; one over 2047 bytes is refused before any request")
    func commandLines() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let kernel = directory.path + "/k.elf"
        _ = FileManager.default.createFile(atPath: kernel, contents: Data([0x7F, 0x45, 0x4C, 0x46]))
        let long = Self.uni(["run", "--cmdline", String(repeating: "a", count: 102_400), kernel])
        #expect(long.message == "invalid kernel command line: 102400 bytes, at most 2047 allowed (x86 Linux's COMMAND_LINE_SIZE is 2048 with the final NUL)")
        #expect(long.exitCode == 2)
        // Parsed, then refused only for want of a daemon.
        let dashed = Self.uni(["run", "--cmdline", "-v", kernel])
        #expect(dashed.message?.hasPrefix("cannot reach unid at /nonexistent-uni/unid.sock") == true)
        #expect(dashed.exitCode == 1)
    }

    @Test("an unknown flag is still a one-line usage error with exit code 2")
    func unknownFlag() {
        let result = Self.uni(["ps", "--bogus"])
        #expect(result.message == "Unknown option '--bogus'")
        #expect(result.exitCode == 2)
    }
}
