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
        (["run", "--attach", "--stop-timeout", "-1s", "K"], "invalid --stop-timeout '-1s': expected a duration such as 10s, 500ms or 2m (at most 24h)"),
        (["run", "--stop-timeout", "5s", "K"], "--stop-timeout applies to --attach only"),
        (["inspect", ""], "invalid vm reference '': give a name, id or id prefix"),
        (["logs", ""], "invalid vm reference '': give a name, id or id prefix"),
        (["stats", "--watch", "--interval", "-3s"], "invalid --interval '-3s': expected a duration such as 10s, 500ms or 2m (at most 24h)"),
        (["stats", "--watch", "--interval", "10ms"], "invalid --interval '10ms': must be at least 100ms"),
        (["stats", "--interval", "5s"], "--interval '5s' applies to --watch only"),
        (["stats", ""], "invalid vm reference '': give a name, id or id prefix"),
        (["run", ""], "missing image: give an image reference (NAME:TAG) or the path of a kernel or disk image"),
        (["events", "--since", "-1h"], "invalid --since '-1h': use an RFC 3339 time (2026-11-25T10:00:00Z) or a duration ago (10m, 2h; at most 24h)"),
        (["events", "--until", "yesterday"], "invalid --until 'yesterday': use an RFC 3339 time (2026-11-25T10:00:00Z) or a duration ago (10m, 2h; at most 24h)"),
        (["events", "--filter", "image=x"], "invalid --filter 'image=x': use vm=NAME or vm=ID"),
        (["events", "--filter", "vm=../x"], "invalid vm '../x': give a VM name or a full 12-digit id"),
    ])
    func negativeLookingValues(arguments: [String], message: String) {
        let result = Self.uni(arguments)
        #expect(result.message == message)
        #expect(result.exitCode == 2)
    }

    @Test("restart and health flags: every bad value is named with what is allowed, before any request")
    func supervisionFlags() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let kernel = directory.path + "/k.elf"
        _ = FileManager.default.createFile(atPath: kernel, contents: Data([0x7F, 0x45, 0x4C, 0x46]))
        let allowed = "use never, on-failure[:N] or always[:N] with N from 1 to 1000"
        let cases: [([String], String)] = [
            (["--restart", "sometimes"], "invalid restart policy 'sometimes': \(allowed)"),
            (["--restart", "on-failure:0"], "invalid restart policy 'on-failure:0': \(allowed)"),
            (["--restart", "never:3"], "invalid restart policy 'never:3': \(allowed)"),
            (["--restart", "always", "--rm"], "invalid restart policy 'always' with --rm: a VM removed when it stops cannot be restarted"),
            (["--health-check", "udp:53", "-p", "53:53"], "invalid health check 'udp:53': use tcp:PORT or http:PORT[/path], PORT being a guest port published with -p"),
            (["--health-check", "tcp:80/x", "-p", "8080:80"], "invalid health check 'tcp:80/x': use tcp:PORT or http:PORT[/path], PORT being a guest port published with -p"),
            (["--health-check", "http:0"], "invalid health check 'http:0': use tcp:PORT or http:PORT[/path], PORT being a guest port published with -p"),
            (["--health-check", "http:80"], "invalid health check 'http:80': guest port 80 is not published over tcp; add -p HOST:80"),
            (["--health-check", "http:80/a b", "-p", "8080:80"], "invalid health check path '/a b': use an absolute path without spaces or control characters, at most 1024 bytes"),
            (["--health-check", "tcp:80", "-p", "8080:80", "--health-interval", "10ms"], "invalid --health-interval '10ms': use 100ms to 24h"),
            (["--health-check", "tcp:80", "-p", "8080:80", "--health-timeout", "-1s"], "invalid --health-timeout '-1s': expected a duration such as 10s, 500ms or 2m (at most 24h)"),
            (["--health-check", "tcp:80", "-p", "8080:80", "--health-retries", "0"], "invalid --health-retries '0': use a whole number from 1 to 100"),
            (["--health-check", "tcp:80", "-p", "8080:80", "--health-retries", "x"], "invalid --health-retries 'x': use a whole number from 1 to 100"),
            (["--health-interval", "5s"], "--health-interval applies to --health-check only"),
            (["--network", "bridge"], "invalid network 'bridge': use user or isolated"),
        ]
        for (flags, message) in cases {
            let result = Self.uni(["run"] + flags + [kernel])
            #expect(result.message == message, "\(flags)")
            #expect(result.exitCode == 2, "\(flags)")
        }
        let fine = Self.uni(["run", "--restart", "on-failure:5", "--health-check", "http:80/healthz", "-p", "8080:80", "--health-start-period", "30s",
                             "--network", "isolated", kernel])
        #expect(fine.message?.hasPrefix("cannot reach unid") == true, "\(String(describing: fine.message))")
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
