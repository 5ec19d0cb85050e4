import Foundation
import NIOCore
import Testing
import UniCLI
import UniHTTP
import UniKit
import UniKitTesting

extension Integration {
    /// The VM lifecycle against real QEMU (TCG) and the test guests built from
    /// source. Serialized: each test boots VMs on a 2-core machine.
    @Suite("Lifecycle on real QEMU", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct LifecycleIntegrationTests {
        @Test("run, logs, graceful stop, start again, kill and rm a kernel image")
        func lifecycle() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                let client = harness.client
                let vm = try await client.create(VMConfig(name: "web", image: kernel, memory: .mebibytes(64), kernelCommandLine: "lines=3"))
                #expect(vm.state == .running)
                #expect(vm.accelerator == .tcg)
                #expect(vm.machine == "microvm")
                #expect(vm.pid.map { Host.qemuProcesses(under: harness.directory.path).contains($0) } == true)
                #expect(try await harness.waitForConsole("web", containing: "uni-guest: idle"))
                let console = try await harness.logs("web")
                #expect(console.contains("uni-guest: cmdline=lines=3"))
                #expect(console.contains("line 1\r\nline 2\r\nline 3\r\n"))
                #expect(try await harness.logs("web", tail: 1) == "uni-guest: idle\r\n")

                let stopped = try await client.stop("web")
                #expect(stopped.state == .stopped)
                #expect(stopped.stopReason == .stopped)
                #expect(stopped.exitCode == 0)
                #expect(try await harness.logs("web").contains("uni-guest: powerdown requested"))
                #expect(Host.qemuProcesses(under: harness.directory.path).isEmpty)

                let again = try await client.start("web")
                #expect(again.state == .running)
                #expect(again.startCount == 2)
                let killed = try await client.kill("web")
                #expect(killed.stopReason == .killed)
                #expect(killed.exitCode == 137)
                #expect(killed.exitSignal == 9)

                let recordPath = harness.directory.path + "/vms/\(vm.id)/state.json"
                let record = try JSONCoding.makeDecoder().decode(VM.self, from: Data(contentsOf: URL(fileURLWithPath: recordPath)))
                #expect(record.state == .stopped)
                #expect(record.exitCode == 137)

                try await client.remove("web")
                #expect(!FileManager.default.fileExists(atPath: harness.directory.path + "/vms/\(vm.id)"))
            }
        }

        @Test("the guest's exit status is recorded (isa-debug-exit N -> exit_code N)")
        func exitStatus() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                let vm = try await harness.client.create(VMConfig(name: "job", image: kernel, kernelCommandLine: "exit=7"))
                let final = try await harness.client.wait(vm.id.rawValue)
                #expect(final.state == .stopped)
                #expect(final.exitCode == 7)
                #expect(final.qemuExitStatus == 15)
                #expect(final.stopReason == .exited)
                #expect(final.finishedAt != nil)
            }
        }

        @Test("-kernel and -append are plain values: a kernel named x,readonly=on.elf boots with a command line holding commas")
        func commasInKernelValues() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                let named = harness.directory.path + "/x,readonly=on.elf"
                try FileManager.default.copyItem(atPath: kernel, toPath: named)
                let vm = try await harness.client.create(VMConfig(name: "commas", image: named, kernelCommandLine: "a,b=c exit=3"))
                let final = try await harness.client.wait(vm.id.rawValue)
                #expect(final.exitCode == 3)
                #expect(try await harness.logs("commas").contains("uni-guest: cmdline=a,b=c exit=3"))
            }
        }

        @Test("a guest that ignores powerdown is killed when the stop times out")
        func forcedStop() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                _ = try await harness.client.create(VMConfig(name: "stubborn", image: kernel, kernelCommandLine: "ignore-powerdown"))
                #expect(try await harness.waitForConsole("stubborn", containing: "uni-guest: idle"))
                let stopped = try await harness.client.stop("stubborn", timeout: .milliseconds(300))
                #expect(stopped.stopReason == .stopTimeout)
                #expect(stopped.exitCode == 137)
            }
        }

        @Test("run --rm --attach streams the console, returns the exit code and removes the VM")
        func attachedAutoRemove() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                let output = OutputCollector()
                let code = try await AttachedRun.run(client: harness.client, config: VMConfig(image: kernel, kernelCommandLine: "lines=2 exit=5", autoRemove: true)) {
                    output.append($0)
                }
                #expect(code == 5)
                #expect(output.text.contains("line 2\r\nuni-guest: exit 5"))
                #expect(try await Host.eventually { try await harness.client.list(all: true).isEmpty })
                let folders = try FileManager.default.contentsOfDirectory(atPath: harness.directory.path + "/vms")
                #expect(folders.isEmpty)
            }
        }

        @Test("a raw disk image boots through the BIOS on the pc machine")
        func diskImage() async throws {
            let disk = try Host.disk()
            try await DaemonHarness().run { harness, _ in
                let vm = try await harness.client.create(VMConfig(name: "disk", image: disk, memory: .mebibytes(32)))
                #expect(vm.imageKind == .disk)
                #expect(vm.machine == "pc")
                #expect(try await harness.waitForConsole("disk", containing: "uni-disk-guest: booted from disk"))
                let stopped = try await harness.client.stop("disk", timeout: .milliseconds(200))
                #expect(stopped.stopReason == .stopTimeout)
            }
        }

        @Test("env reaches the guest through fw_cfg and never the host's process list")
        func environment() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                let vm = try await harness.client.create(VMConfig(name: "env", image: kernel, environment: ["SECRET_TOKEN": "s3cr3t value", "PORT": "80"], kernelCommandLine: "env"))
                #expect(try await harness.waitForConsole("env", containing: "uni-guest: env end"))
                let console = try await harness.logs("env")
                #expect(console.contains("uni-guest: env begin\r\nPORT=80\r\nSECRET_TOKEN=s3cr3t value\r\nuni-guest: env end"))
                let pid = try #require(vm.pid)
                let cmdline = String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self)
                #expect(!cmdline.isEmpty)
                #expect(!cmdline.contains("s3cr3t"))
                let envFile = harness.directory.path + "/vms/\(vm.id)/env"
                #expect(try FileManager.default.attributesOfItem(atPath: envFile)[.posixPermissions] as? Int == 0o600)
                _ = try await harness.client.kill("env")
            }
        }

        @Test("port forwarding: QEMU listens on the host port; a busy port is refused and leaves nothing")
        func ports() async throws {
            let kernel = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                let port = try freePort()
                _ = try await harness.client.create(VMConfig(name: "fwd", image: kernel, ports: [PortMapping(hostAddress: "127.0.0.1", hostPort: port, guestPort: 80)]))
                let error = await #expect(throws: UniError.self) {
                    try await harness.client.create(VMConfig(name: "second", image: kernel, ports: [PortMapping(hostPort: port, guestPort: 80)]))
                }
                #expect(error?.message == "host port \(port)/tcp is already in use")
                #expect(error?.code == .conflict)
                let all = try await harness.client.list(all: true)
                #expect(all.map(\.name) == ["fwd"])
                #expect(Host.qemuProcesses(under: harness.directory.path).count == 1)
            }
        }

        @Test("QEMU failing to start shows its stderr and leaves no record, folder or process")
        func qemuFailure() async throws {
            _ = try Host.kernel()
            try await DaemonHarness().run { harness, _ in
                // An x86-64 ELF with no PVH note: QEMU refuses to load it.
                let error = await #expect(throws: UniError.self) { try await harness.client.create(VMConfig(name: "bad", image: "/bin/true")) }
                #expect(error?.code == .hypervisorFailed)
                #expect(error?.message.hasPrefix("qemu failed to start (exit status 1): ") == true)
                #expect(error?.message.contains("PVH ELF Note") == true)
                let all = try await harness.client.list(all: true)
                #expect(all.isEmpty)
                let folders = try FileManager.default.contentsOfDirectory(atPath: harness.directory.path + "/vms")
                #expect(folders.isEmpty)
            }
        }

        func freePort() throws -> UInt16 { try Host.freePort() }
    }
}
