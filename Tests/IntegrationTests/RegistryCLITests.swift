import Foundation
import RegistryTestSupport
import Testing
import UniCLI
@testable import UniKit
import UniKitTesting

extension Integration {
    /// `uni push`, `pull`, `login` and `run REGISTRY/REPO:TAG` through the
    /// real binaries against the real registry (docs/images.md).
    @Suite("Registries through uni and unid", .serialized,
           .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"),
           .enabled(if: RegistryTools.available, "\(RegistryTools.missing)"))
    struct RegistryCLITests {
        @Test("push to a basic-auth registry after uni login; a second data dir pulls it and runs it; run of a missing REGISTRY/REPO:TAG pulls it; the counters count both outcomes")
        func pushLoginPullRun() async throws {
            let kernel = try Host.kernel()
            let credentials = RegistryCredentials(username: "uni", password: "s3cret")
            try await RegistryProcess.with(credentials: credentials) { registry in
                let first = try TemporaryDirectory(prefix: "uni-it"), second = try TemporaryDirectory(prefix: "uni-it")
                defer { first.remove(); second.remove() }
                func uni(_ dir: TemporaryDirectory, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
                    try Host.runProduct("uni", ["--data-dir", dir.path] + arguments)
                }
                let metricsPort = try Host.freePort()
                let source = try Host.startDaemon(dataDir: first.path, arguments: ["--metrics-addr", "127.0.0.1:\(metricsPort)"])
                defer { source.send(SIGKILL) }
                let target = try Host.startDaemon(dataDir: second.path)
                defer { target.send(SIGKILL) }
                #expect(await Host.eventually { (try? uni(first, ["ps"]).status) == 0 && (try? uni(second, ["ps"]).status) == 0 })

                let remote = "\(registry.registry)/team/app:1"
                #expect(try uni(first, ["image", "import", "app:1", "--kernel", kernel, "--cmdline", "lines=2"]).status == 0)
                let refused = try uni(first, ["push", "app:1", remote])
                #expect(refused.status == 1)
                #expect(refused.stderr.contains("uni login \(registry.registry)"), "\(refused.stderr)")
                let wrong = try Host.runProduct("uni", ["--data-dir", first.path, "login", "-u", "uni", "-p", "nope", registry.registry])
                #expect(wrong.status == 1)
                #expect(wrong.stderr.hasPrefix("error: registry \(registry.registry) rejected the credentials of 'uni'"), "\(wrong.stderr)")
                #expect(!FileManager.default.fileExists(atPath: first.path + "/registry-auth.json"), "refused credentials are not saved")
                let login = try uni(first, ["login", "-u", "uni", "-p", "s3cret", registry.registry])
                #expect(login.status == 0 && login.stdout == "Login Succeeded\n", "\(login.stderr)")
                let authFile = first.path + "/registry-auth.json"
                #expect((try FileManager.default.attributesOfItem(atPath: authFile)[.posixPermissions] as? Int) == 0o600)

                let push = try uni(first, ["push", "app:1", remote])
                #expect(push.status == 0, "\(push.stderr)")
                let digest = try #require(try uni(first, ["images", "-o", "json"]).stdout.data(using: .utf8).flatMap { try? JSONCoding.makeDecoder().decode([StoredImage].self, from: $0) }?.first?.digest)
                #expect(push.stdout.contains("Pushed \(remote) \(digest)"), "\(push.stdout)")
                #expect(push.stdout.contains("done"), "plain progress lines when not a terminal: \(push.stdout)")
                #expect(!push.stdout.contains("\u{1B}["), "no terminal codes into a pipe")

                let other = "\(registry.registry)/team/app:2"
                #expect(try uni(first, ["push", "app:1", other]).status == 0)

                // The second daemon has no login: refused, then logged in, pulled (into a terminal: bars redrawn) and run.
                #expect(try uni(second, ["pull", remote]).status == 1)
                #expect(try uni(second, ["login", "-u", "uni", "-p", "s3cret", registry.registry]).status == 0)
                let terminal = try CapturedOutput(terminal: true)
                let pulling = Process()
                pulling.executableURL = URL(fileURLWithPath: Host.binDirectory + "/uni")
                pulling.arguments = ["--data-dir", second.path, "pull", other]
                (pulling.standardInput, pulling.standardOutput, pulling.standardError) = (terminal.child, terminal.child, terminal.child)
                try pulling.run()
                #expect(await Host.eventually { terminal.read(); return !pulling.isRunning })
                terminal.read()
                #expect(pulling.terminationStatus == 0, "\(terminal.output.debugDescription)")
                #expect(terminal.output.contains("\u{1B}[2K") && terminal.output.contains("=>]"), "per-layer bars: \(terminal.output.debugDescription)")
                #expect(terminal.output.contains("Pulled \(other) \(digest)"))
                // Not stored yet under this tag: run pulls it (the blobs are there already).
                let run = try uni(second, ["run", "--name", "pulled", remote])
                #expect(run.status == 0, "\(run.stderr)")
                let vm = try JSONCoding.makeDecoder().decode([VM].self, from: Data(try uni(second, ["inspect", "pulled"]).stdout.utf8))[0]
                #expect(vm.image?.digest == digest && vm.config.image == remote)
                #expect(await Host.eventually { (try? uni(second, ["logs", "pulled"]).stdout.contains("uni-guest: cmdline=lines=2")) == true })
                let pull = try uni(second, ["pull", remote])
                #expect(pull.status == 0 && pull.stdout.contains("Pulled \(remote) \(digest)"), "\(pull.stdout)\(pull.stderr)")
                #expect(try uni(second, ["logout", registry.registry]).status == 0)

                let metrics = await Host.get("http://127.0.0.1:\(metricsPort)/metrics").1
                #expect(metrics.contains(#"uni_registry_push_total{result="success"} 2"#), "\(metrics)")
                #expect(metrics.contains(#"uni_registry_push_total{result="failure"} 1"#))
                #expect(metrics.contains(#"uni_registry_pull_total{result="success"} 0"#))
                source.send(SIGTERM)
                target.send(SIGTERM)
                #expect(await source.waitForTermination() == .exited(0))
                #expect(await target.waitForTermination() == .exited(0))
            }
        }
    }
}
