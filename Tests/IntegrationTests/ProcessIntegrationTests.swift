import Foundation
import Testing
import UniCLI
import UniHTTP
@testable import UniKit
import UniKitTesting

extension Integration {
    /// The real `unid` and `uni` binaries as separate processes: exit codes,
    /// messages, the data-dir lock, and recovery after a daemon dies.
    @Suite("unid and uni processes", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct ProcessIntegrationTests {
        @Test("CLI usage errors exit 2 with one line naming the value")
        func usageErrors() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let cases: [([String], String)] = [
                (["run", "/bin/true", "--memory", "12X"], "invalid memory '12X'"),
                (["run", "/bin/true", "--memory", "-1"], "invalid memory '-1'"),
                (["logs", "web", "--tail", "-5"], "invalid --tail '-5'"),
                (["inspect", ""], "invalid vm reference ''"),
                (["run", "/bin/true", "--cpus", "0"], "invalid cpus '0'"),
                (["run", "/bin/true", "-p", "80"], "invalid port mapping '80'"),
                (["run", "/bin/true", "-e", "1A=b"], "invalid environment variable '1A=b'"),
                (["run", "/nonexistent/kernel"], "image '/nonexistent/kernel' does not exist"),
                (["stop", "web", "--timeout", "soon"], "invalid --timeout 'soon'"),
                (["frobnicate"], "unknown command 'frobnicate': the commands are run, ps, inspect"),
                (["run", "/bin/true", "--name", "-bad"], "invalid name '-bad': use 1-63 letters"),
                (["logs", "web", "--tail", "abc"], "invalid --tail 'abc'"),
                (["ps", "extra"], "Unexpected argument 'extra': `uni ps --help` shows what it takes"),
                (["pull", "app:1"], "cannot pull 'app:1': it names no registry (give REGISTRY/REPO:TAG, e.g. localhost:5000/app:1)"),
                (["login", "-u", "me", "localhost:5000"], "give the password with --password or --password-stdin (one of them)"),
                (["update", "web", "--memory-max", "1Q"], "invalid --memory-max '1Q'"),
                (["rmi", "Bad:1"], "invalid image reference 'Bad:1'"),
                (["run", "/bin/true", "--cpu-shares", "0"], "invalid --cpu-shares '0': use a whole number from 1 to 10000"),
                (["run", "/bin/true", "--cpu-shares", "10001"], "invalid --cpu-shares '10001'"),
                (["run", "/bin/true", "--memory-max", "1Q"], "invalid --memory-max '1Q'"),
                (["run", "/bin/true", "--memory", "256M", "--memory-max", "128M"], "invalid memory max '128M': it must be at least the VM's memory (256M)"),
                (["run", "/bin/true", "--disk-iops", "-1"], "invalid --disk-iops '-1': use a whole number from 0 (no limit)"),
                (["run", "/bin/true", "--disk-bps", "10X"], "invalid --disk-bps '10X'"),
                (["update", "web"], "nothing to update: give --cpu-shares, --memory-max, --disk-iops or --disk-bps"),
                (["update", "web", "--cpu-shares", "-3"], "invalid --cpu-shares '-3'"),
            ]
            for (arguments, needle) in cases {
                let result = try Host.runProduct("uni", ["--data-dir", dir.path] + arguments)
                #expect(result.status == 2, "\(arguments): \(result.stderr)")
                #expect(result.stderr.hasPrefix("error: "), "\(arguments)")
                #expect(result.stderr.contains(needle), "\(arguments): \(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
            }
            let invalidAccel = try Host.runProduct("unid", ["--data-dir", dir.path, "--accel", "warp"])
            #expect(invalidAccel.status == 2)
            #expect(invalidAccel.stderr.contains("invalid --accel 'warp': expected one of auto, kvm, tcg"))
        }

        @Test("uni without a daemon says how to start one")
        func noDaemon() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let result = try Host.runProduct("uni", ["ps"], environment: ["UNI_HOME": dir.path])
            #expect(result.status == 1)
            #expect(result.stderr == "error: cannot reach unid at \(dir.path)/unid.sock: start it with `unid`\n")
        }

        @Test("uni hands trace export to the uni-otel next to it; without one it warns and still runs the command")
        func tracingExecutable() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            // Next to the built uni: the command runs in uni-otel (its span export
            // to a dead collector never fails the command).
            let traced = try Host.runProduct("uni", ["ps"], environment: ["UNI_HOME": dir.path, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"])
            #expect(traced.status == 1)
            #expect(traced.stderr.hasPrefix("error: cannot reach unid at \(dir.path)/unid.sock"))
            // A copy of uni alone in a folder.
            let lonely = dir.path + "/bin/uni"
            try FileManager.default.createDirectory(atPath: dir.path + "/bin", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Host.binDirectory + "/uni", toPath: lonely)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: lonely)
            process.arguments = ["ps", "--trace-addr", "127.0.0.1:9"]
            process.environment = ["UNI_HOME": dir.path, "HOME": dir.path]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = Pipe()
            try process.run()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 1)
            #expect(stderr == """
            warning: trace export needs \(dir.path)/bin/uni-otel (No such file or directory); running without it
            error: cannot reach unid at \(dir.path)/unid.sock: start it with `unid`

            """)
        }

        @Test("a second unid on the same data dir exits with a clear error; a killed unid's VMs are recovered")
        func lockAndRecovery() async throws {
            let kernel = try Host.kernel()
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            let unid = try Host.startDaemon(dataDir: dir.path)
            defer { unid.send(SIGKILL) }
            #expect(await Host.eventually { FileManager.default.fileExists(atPath: dir.path + "/unid.sock") })

            let second = try Host.runProduct("unid", ["--data-dir", dir.path, "--accel", "tcg"])
            #expect(second.status == 1)
            #expect(second.stderr.contains("another unid is already running on data dir '\(dir.path)' (pid \(unid.pid))"))

            let run = try Host.runProduct("uni", ["--data-dir", dir.path, "run", "--name", "orphan", kernel])
            #expect(run.status == 0, "\(run.stderr)")
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.count == 12)
            let duplicate = try Host.runProduct("uni", ["--data-dir", dir.path, "run", "--name", "orphan", kernel])
            #expect(duplicate.status == 1)
            #expect(duplicate.stderr == "error: the name 'orphan' is already used by vm \(id)\n")
            let ps = try Host.runProduct("uni", ["--data-dir", dir.path, "ps"])
            #expect(ps.stdout.contains("orphan"))
            #expect(ps.stdout.hasPrefix("ID"))
            let json = try Host.runProduct("uni", ["--data-dir", dir.path, "ps", "-a", "--output", "json"])
            let listed = try JSONCoding.makeDecoder().decode([VM].self, from: Data(json.stdout.utf8))
            #expect(listed.map(\.name) == ["orphan"])
            let qemu = Host.qemuProcesses(under: dir.path)
            #expect(qemu.count == 1)

            // The daemon dies without stopping its VM.
            unid.send(SIGKILL)
            _ = await unid.waitForTermination()
            #expect(Host.qemuProcesses(under: dir.path) == qemu)
            // QEMU inherited none of unid's descriptors (its lock, its API
            // socket), so a dead unid is reported at once instead of hanging.
            for pid in qemu {
                let folder = "/proc/\(pid)/fd"
                let targets = try FileManager.default.contentsOfDirectory(atPath: folder).compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + $0) }
                #expect(!targets.contains(dir.path + "/unid.lock"), "QEMU holds unid's lock: \(targets)")
            }
            let unreachable = try Host.runProduct("uni", ["--data-dir", dir.path, "ps"])
            #expect(unreachable.status == 1)
            #expect(unreachable.stderr.contains("cannot reach unid"), "\(unreachable.stderr)")

            let next = try Host.startDaemon(dataDir: dir.path)
            defer { next.send(SIGKILL) }
            #expect(await Host.eventually { Host.qemuProcesses(under: dir.path).isEmpty })
            #expect(await Host.eventually { (try? Host.runProduct("uni", ["--data-dir", dir.path, "inspect", "orphan"]).status) == 0 })
            let inspect = try Host.runProduct("uni", ["--data-dir", dir.path, "inspect", "orphan"])
            let record = try JSONCoding.makeDecoder().decode([VM].self, from: Data(inspect.stdout.utf8))[0]
            #expect(record.state == .stopped)
            #expect(record.daemonRecovered)
            #expect(record.stopReason == .daemonRecovered)

            // SIGTERM: graceful shutdown stops running VMs before unid exits.
            let rerun = try Host.runProduct("uni", ["--data-dir", dir.path, "start", "orphan"])
            #expect(rerun.status == 0, "\(rerun.stderr)")
            next.send(SIGTERM)
            #expect(await next.waitForTermination() == .exited(0))
            #expect(Host.qemuProcesses(under: dir.path).isEmpty)
        }

        @Test("unid --log-format json: every stderr line is one JSON object; transitions carry vm_id, from, to")
        func jsonLogs() async throws {
            let kernel = try Host.kernel()
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            let unid = try ChildProcess(executable: Host.binDirectory + "/unid",
                                        arguments: ["--data-dir", dir.path, "--accel", "tcg", "--log-format", "json"]) { _ in }
            defer { unid.send(SIGKILL) }
            #expect(await Host.eventually { FileManager.default.fileExists(atPath: dir.path + "/unid.sock") })
            let run = try Host.runProduct("uni", ["--data-dir", dir.path, "run", "--attach", kernel, "--cmdline", "exit=0"])
            #expect(run.status == 0, "\(run.stderr)")
            unid.send(SIGTERM)
            #expect(await unid.waitForTermination() == .exited(0))
            let lines = unid.standardError.split(separator: "\n")
            #expect(!lines.isEmpty)
            var transitions: [[String: Any]] = []
            for line in lines {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
                let ts = try #require(object["ts"] as? String)
                #expect(ts.hasSuffix("Z") && ts.count == 24, "\(ts)")
                #expect(["INFO", "WARN", "ERROR", "NOTICE", "DEBUG", "TRACE", "CRITICAL"].contains(object["level"] as? String ?? ""))
                #expect(object["msg"] is String)
                if object["msg"] as? String == "vm state transition" { transitions.append(object) }
            }
            let running = transitions.first { $0["to"] as? String == "running" }
            #expect(running?["from"] as? String == "starting")
            #expect((running?["vm_id"] as? String)?.count == 12)
            #expect(transitions.contains { $0["to"] as? String == "stopped" })
        }

        @Test("bad telemetry flags are usage errors")
        func badTelemetryFlags() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let metrics = try Host.runProduct("unid", ["--data-dir", dir.path, "--metrics-addr", "nine"])
            #expect(metrics.status == 2)
            #expect(metrics.stderr.contains("invalid --metrics-addr 'nine': expected HOST:PORT or :PORT"))
            let format = try Host.runProduct("unid", ["--data-dir", dir.path, "--log-format", "xml"])
            #expect(format.status == 2)
            #expect(format.stderr.contains("invalid --log-format 'xml': expected one of text, json"))
        }

        @Test("unid names a missing QEMU binary and a busy metrics port")
        func daemonStartErrors() throws {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let noQEMU = try Host.runProduct("unid", ["--data-dir", dir.path, "--qemu", "/nonexistent/qemu-system-x86_64"])
            #expect(noQEMU.status == 1)
            #expect(noQEMU.stderr == "error: QEMU binary '/nonexistent/qemu-system-x86_64' is missing or not executable\n")
            let busy = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(busy) }
            let port = try Host.freePort()
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(busy, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            listen(busy, 1)
            let taken = try Host.runProduct("unid", ["--data-dir", dir.path, "--accel", "tcg", "--metrics-addr", "127.0.0.1:\(port)"])
            #expect(taken.status == 1)
            #expect(taken.stderr == "error: --metrics-addr 127.0.0.1:\(port): host port 127.0.0.1:\(port)/tcp is already in use\n")
        }

        @Test("kill -9 of unid: the next one recovers an always VM and starts it again, leaves a plain one stopped; uni events tells all of it across three daemons")
        func restartAcrossDaemons() async throws {
            let kernel = try Host.kernel()
            let dir = try TemporaryDirectory(prefix: "uni-it")
            defer { dir.remove() }
            func uni(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
                try Host.runProduct("uni", ["--data-dir", dir.path] + arguments)
            }
            func inspect(_ name: String) -> VM? {
                (try? uni(["inspect", name])).flatMap { (try? JSONCoding.makeDecoder().decode([VM].self, from: Data($0.stdout.utf8)))?.first }
            }
            let first = try Host.startDaemon(dataDir: dir.path)
            defer { first.send(SIGKILL) }
            #expect(await Host.eventually { FileManager.default.fileExists(atPath: dir.path + "/unid.sock") })
            #expect(try uni(["run", "--name", "svc", "--restart", "always", kernel]).status == 0)
            #expect(try uni(["run", "--name", "plain", kernel]).status == 0)
            first.send(SIGKILL)
            _ = await first.waitForTermination()

            let second = try Host.startDaemon(dataDir: dir.path)
            defer { second.send(SIGKILL) }
            #expect(await Host.eventually { inspect("svc")?.state == .running && inspect("svc")?.restartCount == 1 })
            let plain = try #require(inspect("plain"))
            #expect(plain.state == .stopped && plain.stopReason == .daemonRecovered)
            #expect(plain.exits.map(\.reason) == [.daemonRecovered])
            #expect(Host.qemuProcesses(under: dir.path).count == 1, "the orphans are gone; one new QEMU for svc")
            second.send(SIGTERM)
            #expect(await second.waitForTermination() == .exited(0))
            #expect(inspect("svc") == nil, "no daemon")

            // A graceful shutdown stopped it as daemon_shutdown: the third daemon brings it back too.
            let third = try Host.startDaemon(dataDir: dir.path)
            defer { third.send(SIGKILL) }
            #expect(await Host.eventually { inspect("svc")?.state == .running && inspect("svc")?.restartCount == 2 })
            #expect(inspect("svc")?.exits.map(\.reason) == [.daemonRecovered, .daemonShutdown])

            let history = try uni(["events", "--until", "0s", "--filter", "vm=svc", "--output", "json"])
            #expect(history.status == 0, "\(history.stderr)")
            let events = try history.stdout.split(separator: "\n").map { try JSONCoding.makeDecoder().decode(VMEvent.self, from: Data($0.utf8)) }
            #expect(Set(events.map(\.vmName)) == ["svc"])
            #expect(events.map(\.sequence) == events.map(\.sequence).sorted(), "one sequence across daemons")
            let summary = events.map { event -> String in
                switch event.kind {
                case .transition: return "\(event.attributes["from"] ?? "?")>\(event.attributes["to"] ?? "?")"
                case .exit, .restart: return "\(event.kind.rawValue):\(event.attributes["reason"] ?? "?")"
                default: return event.kind.rawValue
                }
            }
            #expect(summary == [
                "none>created", "created>starting", "starting>running",                                    // first daemon
                "running>stopped", "exit:daemon_recovered", "restart:daemon_recovered", "stopped>starting", "starting>running",  // second
                "running>stopping", "stopping>stopped", "exit:daemon_shutdown",
                "restart:daemon_shutdown", "stopped>starting", "starting>running",                        // third
            ])
            let table = try uni(["events", "--until", "0s", "--filter", "vm=plain"])
            #expect(table.stdout.contains("  plain  ") && table.stdout.contains("  exit  reason=daemon_recovered"), "\(table.stdout)")
            third.send(SIGTERM)
            #expect(await third.waitForTermination() == .exited(0))
            #expect(Host.qemuProcesses(under: dir.path).isEmpty)
        }
    }
}
