import Foundation
import Testing
import UniCore
@testable import UniKit
import UniKitTesting

extension Integration {
    /// The version the binaries print, `scripts/install.sh` into a temporary
    /// root, and the systemd units it installs (docs/packaging.md).
    @Suite("Packaging (versions, install.sh, systemd units)")
    struct PackagingIntegrationTests {
        @Test("uni --version and unid --version print the version of uni_build_info on a real unid's /metrics")
        func versionsAgree() async throws {
            let uni = try Host.runProduct("uni", ["--version"])
            let unidVersion = try Host.runProduct("unid", ["--version"])
            #expect(uni.status == 0 && unidVersion.status == 0, "\(uni.stderr)\(unidVersion.stderr)")
            #expect(uni.stdout == UniVersion.current + "\n")
            #expect(unidVersion.stdout == UniVersion.current + "\n")

            let directory = try TemporaryDirectory(prefix: "uni-version")
            defer { directory.remove() }
            let port = try Host.freePort()
            let unid = try Host.startDaemon(dataDir: directory.path, arguments: ["--metrics-addr", "127.0.0.1:\(port)"])
            defer { unid.send(SIGKILL) }
            var metrics = ""
            #expect(await Host.eventually {
                let (status, body) = await Host.get("http://127.0.0.1:\(port)/metrics")
                metrics = body
                return status == 200 && body.contains("uni_build_info")
            })
            let line = try #require(metrics.split(separator: "\n").first { $0.hasPrefix("uni_build_info{") }, "\(metrics)")
            let label = try #require(line.firstMatch(of: /version="([^"]*)"/)?.output.1, "no version label: \(line)")
            #expect(String(label) + "\n" == uni.stdout)
            // swift-prometheus writes the gauge as a double.
            #expect(line.split(separator: " ").last.flatMap { Double($0) } == 1)
            unid.send(SIGTERM)
            #expect(await unid.waitForTermination() == .exited(0))
        }

        /// Runs `scripts/install.sh` with `arguments` and `DESTDIR`.
        static func install(_ arguments: [String], destination: String?) throws -> (status: Int32, stdout: String, stderr: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [Host.packageRoot + "/scripts/install.sh"] + arguments
            var environment = ProcessInfo.processInfo.environment
            environment["DESTDIR"] = destination
            environment["PREFIX"] = nil
            process.environment = environment
            // stderr goes to a file: a chatty build must not fill a pipe
            // that nobody reads while stdout is being read.
            let errors = try TemporaryDirectory(prefix: "uni-install-log")
            defer { errors.remove() }
            let errorPath = errors.path + "/stderr"
            _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
            let out = Pipe()
            process.standardOutput = out
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
            try process.run()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let stderr = try String(contentsOfFile: errorPath, encoding: .utf8)
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), stderr)
        }

        /// Runs `executable` and returns its status and both outputs.
        static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self))
        }

        /// The release unid of `scripts/build-release.sh`: valgrind 3.19 aborts on
        /// the debug build's dynamically linked Swift runtime.
        static let releaseUnid = Host.packageRoot + "/.build/fs/release/unid"

        @Test("scripts/startup-order.py profiles a real release unid under callgrind: thousands of its functions with its entry point, nothing left running",
              .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/valgrind"), "valgrind is not installed (scripts/setup.sh installs it)"),
              .enabled(if: FileManager.default.isExecutableFile(atPath: releaseUnid), "no release unid: scripts/build-release.sh builds it"))
        func startupOrder() throws {
            let directory = try TemporaryDirectory(prefix: "uni-order-test")
            defer { directory.remove() }
            let order = directory.path + "/unid.order"
            // With the test kernel one VM runs too; the script's folder (and the VM's) lives under TMPDIR.
            let result = try Host.runExecutable("/usr/bin/python3", [Host.packageRoot + "/scripts/startup-order.py", Self.releaseUnid, order, try Host.kernel()],
                                                environment: ["TMPDIR": directory.path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains("cut short"), "the VM's part failed: \(result.stderr)")
            let names = try String(contentsOfFile: order, encoding: .utf8).split(separator: "\n")
            #expect(names.count > 1000, "\(names.count) functions")
            #expect(Set(names).count == names.count, "a function is listed twice")
            #expect(names.contains("unid_main"), "unid's entry point is not in the order")
            #expect(names.contains { $0.hasPrefix("$s6UniKit9VMManagerC") }, "no VMManager method in the order")
            #expect(!names.contains { $0.hasPrefix("0x") || $0.hasSuffix("'2") })
            #expect(Host.qemuProcesses(under: directory.path).isEmpty)
            let left = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            #expect(left == ["unid.order"], "the script left \(left)")
            let usage = try Host.runExecutable("/usr/bin/python3", [Host.packageRoot + "/scripts/startup-order.py", "only-one"])
            #expect(usage.status != 0)
            #expect(usage.stderr == "usage: scripts/startup-order.py UNID ORDER_FILE [KERNEL]\n")
        }

        @Test("install.sh --bin puts executables, completions, man pages and every unit under DESTDIR; they work")
        func installIntoDestdir() async throws {
            let root = try TemporaryDirectory(prefix: "uni-install")
            defer { root.remove() }
            let result = try Self.install(["--bin", Host.binDirectory], destination: root.path)
            #expect(result.status == 0, "\(result.stderr)")
            let prefix = root.path + "/usr/local"
            let files = ["bin/uni", "bin/uni-otel", "bin/unid",
                         "share/bash-completion/completions/uni", "share/zsh/site-functions/_uni", "share/fish/vendor_completions.d/uni.fish",
                         "share/bash-completion/completions/unid", "share/zsh/site-functions/_unid", "share/fish/vendor_completions.d/unid.fish",
                         "share/man/man1/uni.1", "share/man/man1/unid.1", "share/man/man1/uni.run.1", "share/man/man1/uni.ps.1"]
            for file in files {
                #expect(FileManager.default.fileExists(atPath: prefix + "/" + file), "missing \(file)")
            }
            let units = try FileManager.default.contentsOfDirectory(atPath: Host.packageRoot + "/packaging/systemd").filter { $0.hasSuffix(".service") }
            #expect(units.contains("unid.service"))
            for unit in units {
                let installed = prefix + "/lib/systemd/system/" + unit
                let text = try String(contentsOfFile: installed, encoding: .utf8)
                #expect(!text.contains(root.path), "\(unit) names the staging root")
            }

            // The installed executables run, and know their version.
            let version = try Self.run(prefix + "/bin/uni", ["--version"])
            #expect(version.status == 0)
            #expect(version.output == UniVersion.current + "\n")
            let bashCheck = try Self.run("/bin/bash", ["-n", prefix + "/share/bash-completion/completions/uni"])
            #expect(bashCheck.status == 0, "\(bashCheck.output)")
            #expect(try String(contentsOfFile: prefix + "/share/bash-completion/completions/uni", encoding: .utf8).contains("complete -"))
            let page = try String(contentsOfFile: prefix + "/share/man/man1/uni.1", encoding: .utf8)
            #expect(page.contains(".Dt UNI 1"), "\(page.prefix(300))")

            // The same options uninstall; the units' folders stay.
            let removed = try Self.install(["--uninstall"], destination: root.path)
            #expect(removed.status == 0, "\(removed.stderr)")
            for file in files { #expect(!FileManager.default.fileExists(atPath: prefix + "/" + file), "left behind: \(file)") }
            #expect(!FileManager.default.fileExists(atPath: prefix + "/lib/systemd/system/unid.service"))
        }

        @Test("install.sh refuses a bad option or prefix in one line (exit 2) and a missing build (exit 1)")
        func installErrors() throws {
            let unknown = try Self.install(["--frobnicate"], destination: "/nonexistent-root")
            #expect(unknown.status == 2)
            #expect(unknown.stderr == "error: unknown option '--frobnicate' (scripts/install.sh --help lists the options)\n")
            let relative = try Self.install(["--prefix", "usr/local"], destination: "/nonexistent-root")
            #expect(relative.status == 2)
            #expect(relative.stderr == "error: 'usr/local' is not an absolute path: --prefix and --unit-dir take one (scripts/install.sh --help lists the options)\n")
            let missing = try Self.install(["--bin", "/nonexistent-bin"], destination: "/nonexistent-root")
            #expect(missing.status == 1)
            #expect(missing.stderr == "error: no executable '/nonexistent-bin/uni': build first (scripts/build-release.sh) or drop --no-build\n")
            let help = try Self.install(["--help"], destination: nil)
            #expect(help.status == 0)
            #expect(help.stdout.contains("--no-build"))
        }

        @Test("systemd-analyze verify accepts every unit of packaging/systemd as installed")
        func unitsVerify() throws {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
                print("skipping: systemd-analyze is not installed")
                return
            }
            let root = try TemporaryDirectory(prefix: "uni-units")
            defer { root.remove() }
            // A prefix without DESTDIR: ExecStart then names a real executable,
            // which verify checks; and man:unid(1) resolves through MANPATH.
            let prefix = root.path + "/prefix"
            let result = try Self.install(["--bin", Host.binDirectory, "--prefix", prefix], destination: nil)
            #expect(result.status == 0, "\(result.stderr)")
            let unitDirectory = prefix + "/lib/systemd/system"
            let units = try FileManager.default.contentsOfDirectory(atPath: unitDirectory).filter { $0.hasSuffix(".service") }
            #expect(units.contains("unid.service"))
            for unit in units {
                // A template is checked through an instance of it, beside the
                // units it requires (verify adds a unit file's folder to its search path).
                var path = unitDirectory + "/" + unit
                if unit.hasSuffix("@.service") {
                    path = unitDirectory + "/" + unit.replacingOccurrences(of: "@.service", with: "@verify.service")
                    try FileManager.default.copyItem(atPath: unitDirectory + "/" + unit, toPath: path)
                }
                let verify = try Self.run("/usr/bin/systemd-analyze", ["verify", path], environment: ["MANPATH": prefix + "/share/man"])
                #expect(verify.status == 0, "\(unit): \(verify.output)")
                #expect(!verify.output.contains((path as NSString).lastPathComponent), "\(unit): \(verify.output)")
            }
            let unid = try String(contentsOfFile: unitDirectory + "/unid.service", encoding: .utf8)
            #expect(unid.contains("ExecStart=\(prefix)/bin/unid --data-dir /var/lib/uni\n"))
            #expect(unid.contains("KillMode=mixed\n"))
        }
    }
}
