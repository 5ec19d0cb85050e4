import Foundation
import Testing
import UniKit

extension Integration {
    /// `Examples/embed`, a package that depends on Uni by path, built with
    /// `swift build` and run as its own process.
    @Suite("Examples/embed (built and run)", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct EmbedExampleTests {
        @Test("runs the test kernel: console on stdout, the guest's exit code as its own")
        func exits() throws {
            let result = try EmbedExample.run([try Host.kernel(), "lines=3 exit=7"])
            #expect(result.status == 7, "stderr: \(result.stderr)")
            #expect(result.lines.contains("uni-guest: booted (pvh)"))
            #expect(result.lines.contains("line 3"))
            #expect(result.lines.last == "exit code: 7 (exited)")
        }

        @Test("stops a kernel that keeps running after its deadline, with a graceful powerdown")
        func stops() throws {
            let result = try EmbedExample.run([try Host.kernel(), "lines=3", "1"])
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(Array(result.lines.drop { !$0.hasPrefix("line ") }.prefix(3)) == ["line 1", "line 2", "line 3"])
            #expect(result.lines.contains("uni-guest: powerdown requested"))
            #expect(result.lines.last == "exit code: 0 (stopped)")
        }

        @Test("without a kernel it prints its usage and exits 2")
        func usage() throws {
            let result = try EmbedExample.run([])
            #expect(result.status == 2)
            #expect(result.stderr == "usage: embed KERNEL [CMDLINE] [SECONDS]\n")
        }
    }
}

/// Builds `Examples/embed` once per test process (`scripts/setup.sh` built
/// it already in CI, so this only checks it is up to date) and runs it.
enum EmbedExample {
    /// The scratch path `scripts/setup.sh` builds the example in.
    static let scratchPath = Host.packageRoot + "/.build/embed"

    static let binary: Result<String, any Error> = Host.runBuild(
        "/usr/bin/env", ["swift", "build", "--package-path", Host.packageRoot + "/Examples/embed", "--scratch-path", scratchPath],
        what: "swift build of Examples/embed"
    ).map { scratchPath + "/debug/embed" }

    /// Runs the built example under TCG, as every integration test (the
    /// idle test kernel misses the powerdown under this host's nested KVM);
    /// `lines` is its stdout without the `\r` of the serial console.
    static func run(_ arguments: [String]) throws -> (status: Int32, lines: [String], stderr: String) {
        let result = try Host.runExecutable(try binary.get(), arguments, environment: ["UNI_ACCEL": "tcg"])
        let lines = result.stdout.replacingOccurrences(of: "\r", with: "").split(separator: "\n").map(String.init)
        return (result.status, lines, result.stderr)
    }
}
