import Foundation
import Testing
import UniCLI
@testable import UniKit
import UniKitTesting

extension Integration {
    /// What docker users type, through the real binaries (issue #19):
    /// docs/cli.md, "Docker differences", lists what stays different on purpose.
    @Suite("Docker's habits in uni", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct DockerHabitsTests {
        @Test("inspect is always an array; start of a running VM and stop of a stopped one succeed; kill of a stopped one fails; restart, wait, run -d, -o/--format json, docker's PORTS, global flags before the command")
        func habits() async throws {
            let kernel = try Host.kernel()
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            func uni(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
                try Host.runProduct("uni", ["--data-dir", dir.path] + arguments, environment: environment)
            }
            let unid = try Host.startDaemon(dataDir: dir.path)
            defer { unid.send(SIGKILL) }
            #expect(await Host.eventually { (try? uni(["ps"]).status) == 0 })
            let (bound, any) = (try Host.freePort(), try Host.freePort())

            let run = try uni(["run", "-d", "--name", "a", "-p", "127.0.0.1:\(bound):80", "-p", "\(any):81", kernel])
            try #require(run.status == 0, "\(run.stderr)")
            let ps = try uni(["ps"]).stdout
            #expect(ps.contains("127.0.0.1:\(bound)->80/tcp, 0.0.0.0:\(any)->81/tcp"), "\(ps)")

            let one = try uni(["inspect", "a"])
            #expect(one.stdout.hasPrefix("["))
            #expect(try JSONCoding.makeDecoder().decode([VM].self, from: Data(one.stdout.utf8)).map(\.name) == ["a"])
            let partly = try uni(["inspect", "a", "nope"])
            #expect(partly.status == 1 && partly.stderr == "error: no such vm: nope\n")
            #expect(try JSONCoding.makeDecoder().decode([VM].self, from: Data(partly.stdout.utf8)).map(\.name) == ["a"])
            for format in [["-o", "json"], ["--format", "json"], ["--output", "json"]] {
                let listed = try uni(["ps", "-a"] + format)
                #expect((try? JSONCoding.makeDecoder().decode([VM].self, from: Data(listed.stdout.utf8)))?.count == 1, "\(format): \(listed.stdout)")
            }

            let again = try uni(["start", "a"])
            #expect(again.status == 0 && again.stdout == "a\n", "\(again.stderr)")
            #expect(try uni(["stop", "a"]).status == 0)
            let stoppedAgain = try uni(["stop", "a"])
            #expect(stoppedAgain.status == 0 && stoppedAgain.stdout == "a\n", "\(stoppedAgain.stderr)")
            let killStopped = try uni(["kill", "a"])
            #expect(killStopped.status == 1 && killStopped.stderr.hasPrefix("error: vm a is"), "\(killStopped.stderr)")

            #expect(try uni(["restart", "a"]).stdout == "a\n")
            #expect(try JSONCoding.makeDecoder().decode([VM].self, from: Data(try uni(["inspect", "a"]).stdout.utf8)).first?.state == .running)
            #expect(try uni(["restart", "a", "--timeout", "1s"]).status == 0)

            // wait blocks until the VM stops, then prints its exit code.
            let waiter = try ChildProcess(executable: Host.binDirectory + "/uni", arguments: ["--data-dir", dir.path, "wait", "a"]) { _ in }
            #expect(try uni(["kill", "a"]).status == 0)
            #expect(await waiter.waitForTermination() == .exited(0))
            let final = try JSONCoding.makeDecoder().decode([VM].self, from: Data(try uni(["inspect", "a"]).stdout.utf8))[0]
            #expect(final.exitCode == 137)
            #expect(try uni(["wait", "a"]).stdout == "137\n", "a stopped VM answers at once")

            // Global flags before the command.
            let traced = try Host.runProduct("uni", ["--trace-addr", "127.0.0.1:9", "--data-dir", dir.path, "ps", "-a"])
            #expect(traced.status == 0, "\(traced.stderr)")
            unid.send(SIGTERM)
            #expect(await unid.waitForTermination() == .exited(0))
        }

        @Test("the help names the global flags and shows the defaults the docs list")
        func help() throws {
            let root = try Host.runProduct("uni", ["--help"])
            #expect(root.status == 0)
            #expect(root.stdout.contains("--data-dir DIR") && root.stdout.contains("--trace-addr HOST:PORT"), "\(root.stdout)")
            let run = try Host.runProduct("uni", ["run", "--help"])
            let flat = run.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(flat.contains("else 256M") && flat.contains("else 1)"), "\(run.stdout)")
            #expect(flat.contains("-d, --detach"))
        }

        @Test("a daemon that accepts and never answers is an error naming the socket, after UNI_API_TIMEOUT")
        func silentDaemon() async throws {
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            let listener = try SilentSocket(path: dir.path + "/unid.sock")
            defer { withExtendedLifetime(listener) {} }
            let clock = ContinuousClock()
            let started = clock.now
            let result = try Host.runProduct("uni", ["--data-dir", dir.path, "ps"], environment: ["UNI_API_TIMEOUT": "0.3"])
            #expect(result.status == 1)
            #expect(result.stderr == "error: unid at \(dir.path)/unid.sock did not answer within 0.3 seconds (set UNI_API_TIMEOUT=SECONDS to wait longer)\n")
            #expect(clock.now - started < .seconds(20), "it did not wait for ever")
        }
    }
}
