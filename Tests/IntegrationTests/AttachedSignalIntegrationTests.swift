import Foundation
import Testing
import UniCore
@testable import UniKit
import UniKitTesting

extension Integration {
    /// The built `uni run --attach`, signalled as systemd, Nomad or a
    /// terminal would: the VM is stopped (or killed), the exit code is the
    /// guest's, and nothing is left behind.
    @Suite("uni run --attach under signals")
    struct AttachedSignals {
        /// `uni run --attach` (or a shell that becomes it) as a child
        /// process, its stdout and stderr in one pipe.
        final class AttachedProcess {
            let process = Process()
            let output: CapturedOutput

            convenience init(dataDir: String, arguments: [String]) throws {
                try self.init(executable: Host.binDirectory + "/uni", arguments: ["--data-dir", dataDir, "run", "--attach"] + arguments)
            }

            init(executable: String, arguments: [String], environment: [String: String] = [:]) throws {
                output = try CapturedOutput(terminal: false)
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = arguments
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                process.standardOutput = output.child
                process.standardError = output.child
                try process.run()
            }

            deinit {
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }

            /// Whether the console shows `needle` within the deadline.
            func waitForConsole(_ needle: String) async -> Bool {
                await Host.eventually { output.read(); return output.output.contains(needle) }
            }

            func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

            /// The exit status, or `nil` when it is still running at the
            /// deadline (or died of a signal, which it must never do).
            func exitStatus(timeout: Duration = .seconds(30)) async -> Int32? {
                guard await Host.eventually(timeout: timeout, { !process.isRunning }) else { return nil }
                process.waitUntilExit()
                output.read()
                return process.terminationReason == .exit ? process.terminationStatus : nil
            }
        }

        /// Runs `body` against a fresh built `unid` (2 s stop timeout), then
        /// stops it; QEMUs a failed test leaves are killed.
        func withDaemon(_ body: (String) async throws -> Void) async throws {
            let dir = try TemporaryDirectory(prefix: "uni-sig")
            defer {
                for pid in Host.qemuProcesses(under: dir.path) { kill(pid, SIGKILL) }
                dir.remove()
            }
            let unid = try Host.startDaemon(dataDir: dir.path)
            defer { unid.send(SIGKILL) }
            try #require(await Host.eventually { FileManager.default.fileExists(atPath: dir.path + "/unid.sock") })
            try await body(dir.path)
            unid.send(SIGTERM)
            #expect(await unid.waitForTermination() == .exited(0))
        }

        /// Every VM record, running or not.
        func records(_ dataDir: String) throws -> [VM] {
            let listed = try Host.runProduct("uni", ["--data-dir", dataDir, "ps", "-a", "--output", "json"])
            try #require(listed.status == 0, "\(listed.stderr)")
            return try JSONCoding.makeDecoder().decode([VM].self, from: Data(listed.stdout.utf8))
        }

        /// `uni` processes still running on `dataDir` (none may outlive the test's run).
        func uniProcesses(on dataDir: String) -> [Int32] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap { entry in
                guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
                let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return arguments.first?.hasSuffix("/uni") == true && arguments.contains(dataDir) ? pid : nil
            }
        }

        /// Asserts what every signalled `--rm` run leaves: no record, no QEMU, no `uni`.
        func expectNothingLeft(_ dataDir: String) async throws {
            #expect(try await Host.eventually { try records(dataDir).isEmpty })
            #expect(await Host.eventually { Host.qemuProcesses(under: dataDir).isEmpty })
            #expect(uniProcesses(on: dataDir).isEmpty)
        }

        @Test("SIGTERM and SIGHUP power the guest down: exit 0, the --rm VM removed, no QEMU left", arguments: [SIGTERM, SIGHUP])
        func gracefulSignal(signal: Int32) async throws {
            let kernel = try Host.kernel()
            try await withDaemon { dataDir in
                let run = try AttachedProcess(dataDir: dataDir, arguments: ["--rm", "--name", "svc", kernel])
                try #require(await run.waitForConsole("uni-guest: idle"), "\(run.output.output)")
                run.send(signal)
                let status = await run.exitStatus()
                #expect(status == 0, "\(run.output.output)")
                #expect(run.output.output.contains("uni-guest: powerdown requested"))
                try await expectNothingLeft(dataDir)
            }
        }

        @Test("Ctrl-C without --rm: the guest is powered down, exit 0, the VM kept as stopped")
        func interruptKeepsRecord() async throws {
            let kernel = try Host.kernel()
            try await withDaemon { dataDir in
                let run = try AttachedProcess(dataDir: dataDir, arguments: ["--name", "kept", kernel])
                try #require(await run.waitForConsole("uni-guest: idle"), "\(run.output.output)")
                run.send(SIGINT)
                #expect(await run.exitStatus() == 0, "\(run.output.output)")
                let vms = try records(dataDir)
                #expect(vms.map(\.name) == ["kept"])
                #expect(vms.first?.state == .stopped)
                #expect(vms.first?.stopReason == .stopped)
                #expect(vms.first?.exitCode == 0)
                #expect(await Host.eventually { Host.qemuProcesses(under: dataDir).isEmpty })
            }
        }

        @Test("a guest that ignores the powerdown is killed after unid's stop timeout: exit 137")
        func killedAfterStopTimeout() async throws {
            let kernel = try Host.kernel()
            try await withDaemon { dataDir in
                let run = try AttachedProcess(dataDir: dataDir, arguments: ["--rm", kernel, "--cmdline", "ignore-powerdown"])
                try #require(await run.waitForConsole("uni-guest: idle"), "\(run.output.output)")
                run.send(SIGTERM)
                #expect(await run.exitStatus() == 137, "\(run.output.output)")
                try await expectNothingLeft(dataDir)
            }
        }

        @Test("a second Ctrl-C kills at once, long before --stop-timeout: exit 137")
        func doubleInterrupt() async throws {
            let kernel = try Host.kernel()
            try await withDaemon { dataDir in
                let run = try AttachedProcess(dataDir: dataDir, arguments: ["--rm", "--stop-timeout", "10m", "--name", "stubborn", kernel,
                                                                           "--cmdline", "ignore-powerdown"])
                try #require(await run.waitForConsole("uni-guest: idle"), "\(run.output.output)")
                let started = ContinuousClock.now
                run.send(SIGINT)
                // The first Ctrl-C's stop is under way: the guest ignores it.
                #expect(try await Host.eventually { try records(dataDir).first?.state == .stopping })
                run.send(SIGINT)
                #expect(await run.exitStatus() == 137, "\(run.output.output)")
                #expect(ContinuousClock.now - started < .seconds(60))
                try await expectNothingLeft(dataDir)
            }
        }

        @Test("a SIGTERM that comes before the VM exists still stops it once created")
        func signalDuringCreate() async throws {
            let kernel = try Host.kernel()
            try await withDaemon { dataDir in
                // This test process starts children with SIGTERM blocked, so
                // the signal waits until uni catches it, before its create.
                let run = try AttachedProcess(dataDir: dataDir, arguments: ["--rm", "--name", "early", kernel])
                run.send(SIGTERM)
                let status = await run.exitStatus()
                // Powered down (0), or killed after the 2 s stop timeout when
                // the guest had not yet armed its power button (137).
                #expect(status == 0 || status == 137, "\(run.output.output)")
                try await expectNothingLeft(dataDir)
            }
        }
    

        /// `packaging/systemd/uni@.service`.
        static let unitPath = Host.packageRoot + "/packaging/systemd/uni@.service"

        /// The unit's `ExecStart` shell script as systemd hands it to `/bin/sh -c`
        /// for instance `name` (`$$` is a literal `$`, `%i` the instance),
        /// with the installed `uni` replaced by the built one.
        static func execStartScript(instance name: String) throws -> String {
            let unit = try String(contentsOfFile: unitPath, encoding: .utf8)
            let line = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
            let prefix = "ExecStart=/bin/sh -c '"
            try #require(line.hasPrefix(prefix) && line.hasSuffix("'"), "\(line)")
            return String(line.dropFirst(prefix.count).dropLast())
                .replacingOccurrences(of: "$$", with: "$")
                .replacingOccurrences(of: "%i", with: name)
                .replacingOccurrences(of: "/usr/local/bin/uni ", with: Host.binDirectory + "/uni ")
        }

        @Test("uni@.service's ExecStart runs the VM from the environment file's values, and its SIGTERM reaches uni")
        func systemdExecStart() async throws {
            let kernel = try Host.kernel()
            try await withDaemon { dataDir in
                let environment = ["UNI_HOME": dataDir, "UNI_IMAGE": kernel, "UNI_ARGS": "--memory 64M --cpus 1",
                                   "UNI_STOP_TIMEOUT": "10s"]
                // A command line with spaces arrives whole; the guest's exit status is the unit's.
                let once = try Host.runExecutable("/bin/sh", ["-c", try Self.execStartScript(instance: "once")],
                                                  environment: environment.merging(["UNI_CMDLINE": "lines=2 exit=3"]) { $1 })
                #expect(once.status == 3, "\(once.stderr)")
                #expect(once.stdout.contains("uni-guest: cmdline=lines=2 exit=3"), "\(once.stdout)")
                #expect(once.stdout.contains("line 2"))
                #expect(try records(dataDir).isEmpty)

                // No UNI_CMDLINE: no --cmdline, the guest idles until systemd's SIGTERM.
                let run = try AttachedProcess(executable: "/bin/sh", arguments: ["-c", try Self.execStartScript(instance: "svc")],
                                              environment: environment.merging(["UNI_CMDLINE": ""]) { $1 })
                try #require(await run.waitForConsole("uni-guest: idle"), "\(run.output.output)")
                #expect(try records(dataDir).map(\.name) == ["svc"])
                run.send(SIGTERM)
                #expect(await run.exitStatus() == 0, "\(run.output.output)")
                try await expectNothingLeft(dataDir)
            }
        }
    }
}
