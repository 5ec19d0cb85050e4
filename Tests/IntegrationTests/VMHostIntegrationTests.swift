import Foundation
import Logging
import Testing
import UniKit
import UniKitTesting

extension Integration {
    /// ``VMHost``: the manager an embedder (and `unid`) builds, with real QEMU.
    @Suite("VMHost with real QEMU", .serialized, .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"))
    struct VMHostIntegrationTests {
        /// Runs `body` with a loaded manager on a fresh data dir (TCG, no cgroups).
        func withHost(_ body: @Sendable (VMHost, VMManager) async throws -> Void) async throws {
            let directory = try TemporaryDirectory(prefix: "uni-it")
            defer { directory.remove() }
            var logger = Logger(label: "it")
            logger.logLevel = .warning
            let host = try await VMHost.make(dataDirectory: DataDirectory(root: directory.path),
                                             options: VMHostOptions(accelerator: .tcg, stopTimeout: .seconds(5), cgroupRoot: nil), logger: logger)
            try await host.manager.load()
            try await host.manager.withRunning { manager in try await body(host, manager) }
            #expect(Host.qemuProcesses(under: directory.path).isEmpty)
        }

        @Test("a multiboot kernel without a PVH note boots on microvm: command line, exit code")
        func multibootExit() async throws {
            let kernel = try Host.multibootKernel()
            try await withHost { host, manager in
                #expect(host.accelerator == .tcg)
                #expect(host.cgroups.mechanism == .none)
                let (vm, console) = try await manager.runAttached(VMConfig(image: kernel, kernelCommandLine: "lines=2 exit=5"))
                var text = ""
                for await chunk in console { text += String(decoding: chunk, as: UTF8.self) }
                let ended = try await manager.wait(vm.id.rawValue)
                #expect(ended.machine == "microvm")
                #expect(ended.exitCode == 5)
                #expect(ended.stopReason == .exited)
                #expect(text.contains("uni-guest: booted (multiboot)"))
                // QEMU's multiboot loader puts the kernel's path before the command line.
                #expect(text.contains("uni-guest: cmdline=\(kernel) lines=2 exit=5"))
                #expect(text.contains("line 2"))
            }
        }

        @Test("a multiboot kernel on microvm powers off on a graceful stop")
        func multibootGracefulStop() async throws {
            let kernel = try Host.multibootKernel()
            try await withHost { _, manager in
                let vm = try await manager.run(VMConfig(image: kernel))
                #expect(vm.machine == "microvm")
                #expect(try await Host.eventually {
                    var text = ""
                    for await chunk in try await manager.logs(vm.id.rawValue) { text += String(decoding: chunk, as: UTF8.self) }
                    return text.contains("uni-guest: idle")
                })
                let stopped = try await manager.stop(vm.id.rawValue)
                #expect(stopped.exitCode == 0)
                #expect(stopped.stopReason == .stopped)
            }
        }
    }
}
