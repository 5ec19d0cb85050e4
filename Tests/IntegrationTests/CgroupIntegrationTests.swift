import Foundation
import Logging
import Testing
@testable import UniKit
import UniKitTesting

/// This host's cgroups, as `unid` would detect them.
enum HostCgroups {
    static let controller = CgroupControllers.detect(root: CgroupControllers.defaultRoot)
}

extension Integration {
    /// Real QEMU in real cgroups of this host (v1 on hybrid hosts, v2 elsewhere).
    /// Serialized: each test owns the cgroups of its own VMs only, but the OOM
    /// test needs the host's memory to itself.
    @Suite("cgroups with real QEMU", .serialized,
           .enabled(if: Host.hasQEMU, "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"),
           .enabled(if: HostCgroups.controller.mechanism != .none,
                    "no writable cgroups at /sys/fs/cgroup: \(HostCgroups.controller.unavailableReason ?? "")"))
    struct CgroupIntegrationTests {
        /// Runs `body` with a manager of real QEMU (TCG) in the host's cgroups,
        /// then checks that no QEMU and no cgroup of its VMs is left.
        func withManager(_ body: @Sendable (VMManager) async throws -> Void) async throws {
            let directory = try TemporaryDirectory(prefix: "uni-cg-it")
            defer { directory.remove() }
            let manager = VMManager(
                configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path), stopTimeout: .seconds(5)),
                backends: VMManagerBackends(store: FileVMStore(dataDirectory: DataDirectory(root: directory.path)),
                                            hypervisor: QEMUHypervisor(binaryPath: try QEMUHypervisor.locateBinary(), accelerator: .tcg),
                                            cgroups: HostCgroups.controller),
                logger: Logger(label: "it")
            )
            try await manager.load()
            var paths: [String] = []
            try await manager.withRunning { manager in try await body(manager) }
            for vm in await manager.list(all: true) { paths += vm.cgroup?.paths ?? [] }
            for path in paths { #expect(!FileManager.default.fileExists(atPath: path), "cgroup \(path) outlived its VM") }
            let leftovers = Host.qemuProcesses(under: directory.path)
            #expect(leftovers.isEmpty, "QEMU processes outlived the manager: \(leftovers)")
            for pid in leftovers { kill(pid, SIGKILL) }
        }

        @Test("a running VM's QEMU is in its cgroups, which hold its quota and take a new one from update; they are removed when it stops")
        func placement() async throws {
            let kernel = try Host.kernel()
            try await withManager { manager in
                let vm = try await manager.run(VMConfig(name: "placed", image: kernel, memory: .mebibytes(64),
                                                        quota: ResourceQuota(cpuShares: 300, memoryMax: .mebibytes(512))))
                let pid = try #require(vm.pid)
                let status = try #require(vm.cgroup)
                #expect(status.enforced)
                #expect(status.mechanism == HostCgroups.controller.mechanism)
                for path in status.paths {
                    let procs = try String(contentsOfFile: path + "/cgroup.procs", encoding: .utf8)
                    #expect(procs.split(separator: "\n").contains("\(pid)"), "\(pid) is not in \(path)")
                }
                if status.mechanism == .v1 {
                    let cpu = try #require(status.paths.first { $0.contains("/cpu/") })
                    let memory = try #require(status.paths.first { $0.contains("/memory/") })
                    #expect(try String(contentsOfFile: cpu + "/cpu.shares", encoding: .utf8) == "3072\n")
                    #expect(try String(contentsOfFile: memory + "/memory.limit_in_bytes", encoding: .utf8) == "\(512 << 20)\n")
                    // Every VM together: the parent's weight (10 -> 102 shares).
                    #expect(try String(contentsOfFile: cpu + "/../cpu.shares", encoding: .utf8) == "102\n")
                } else {
                    #expect(try String(contentsOfFile: status.paths[0] + "/cpu.weight", encoding: .utf8) == "300\n")
                    #expect(try String(contentsOfFile: status.paths[0] + "/../cpu.weight", encoding: .utf8) == "10\n")
                    #expect(try String(contentsOfFile: status.paths[0] + "/memory.max", encoding: .utf8) == "\(512 << 20)\n")
                }
                // uni update: the running VM's cgroup takes the new quota at once.
                _ = try await manager.update("placed", ResourceUpdate(cpuShares: 500, memoryMax: .mebibytes(600)))
                if status.mechanism == .v1 {
                    let cpu = try #require(status.paths.first { $0.contains("/cpu/") })
                    let memory = try #require(status.paths.first { $0.contains("/memory/") })
                    #expect(try String(contentsOfFile: cpu + "/cpu.shares", encoding: .utf8) == "5120\n")
                    #expect(try String(contentsOfFile: memory + "/memory.limit_in_bytes", encoding: .utf8) == "\(600 << 20)\n")
                } else {
                    #expect(try String(contentsOfFile: status.paths[0] + "/cpu.weight", encoding: .utf8) == "500\n")
                    #expect(try String(contentsOfFile: status.paths[0] + "/memory.max", encoding: .utf8) == "\(600 << 20)\n")
                }
                // The pid as the kernel sees it, from the process's side.
                let membership = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
                #expect(membership.contains("/uni/\(vm.id)"))
                if let pressure = try await manager.inspect("placed").pressure {
                    #expect(pressure.cpu != nil)
                }
                let stopped = try await manager.stop("placed")
                #expect(stopped.stopReason == .stopped)
                for path in status.paths { #expect(!FileManager.default.fileExists(atPath: path), "\(path) is still there") }
            }
        }

        @Test("a guest that touches more memory than --memory-max is OOM-killed by the kernel, and the record says so")
        func oomKill() async throws {
            let kernel = try Host.kernel()
            try await withManager { manager in
                // The guest touches 250 MiB of its 256; QEMU needs tens of MiB
                // of its own on top, so a 256 MiB ceiling cannot hold it.
                let vm = try await manager.create(VMConfig(name: "hungry", image: kernel, memory: .mebibytes(256), kernelCommandLine: "mem=250",
                                                           quota: ResourceQuota(memoryMax: .mebibytes(256))))
                // Under load the kill may come before the start is confirmed: then the start throws, and the record says the same.
                _ = try? await manager.start("hungry")
                let stopped = try await withThrowingTaskGroup(of: VM?.self) { group in
                    group.addTask { try await manager.wait(vm.id.rawValue) }
                    group.addTask {
                        try await Task.sleep(for: .seconds(60))
                        return nil
                    }
                    let first = try await group.next() ?? nil
                    group.cancelAll()
                    return first
                }
                let record = try #require(stopped, "the guest was not killed within 60 s")
                #expect(record.stopReason == .oomKilled, "\(record.stopReason.map(\.rawValue) ?? "-"): \(record.lastError ?? "")")
                #expect(record.exits.last?.reason == .oomKilled)
                #expect(record.lastError?.contains("memory ceiling") == true)
            }
        }
    }
}
