import Foundation
import InMemoryLogging
import Logging
import Testing
@testable import UniKit
import UniKitTesting

/// The manager's use of its cgroup controller, with the recording controller.
@Suite("VMManager cgroups (recording controller)")
struct VMManagerCgroupTests {
    struct Harness {
        let directory: TemporaryDirectory
        let store = InMemoryVMStore()
        let hypervisor: ScriptedHypervisor
        let cgroups: RecordingCgroupController
        let logs = InMemoryLogHandler()
        let manager: VMManager
        let image: String

        init(cgroups: RecordingCgroupController = RecordingCgroupController(),
             script: @escaping @Sendable (VM) -> ScriptedHypervisor.Script = { _ in .init() }) throws {
            directory = try TemporaryDirectory()
            hypervisor = ScriptedHypervisor(script: script)
            self.cgroups = cgroups
            let handler = logs
            manager = VMManager(configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path)),
                                backends: VMManagerBackends(store: store, hypervisor: hypervisor, cgroups: cgroups),
                                logger: Logger(label: "test") { _ in handler })
            image = directory.makeFakeKernel()
        }

        func run(_ body: @Sendable (VMManager) async throws -> Void) async throws {
            defer { directory.remove() }
            try await manager.load()
            try await manager.withRunning(body)
        }

        func config(_ name: String, cpuShares: Int? = 300, memoryMax: UInt64? = 512 << 20) -> VMConfig {
            VMConfig(name: name, image: image, quota: ResourceQuota(cpuShares: cpuShares, memoryMax: memoryMax.map(ByteSize.init(bytes:))))
        }

        func eventually(_ condition: @Sendable () async -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(60)  // only reached when the test fails
            while ContinuousClock.now < deadline {
                if await condition() { return true }
                try? await Task.sleep(for: .milliseconds(2))
            }
            return await condition()
        }
    }

    @Test("the cgroup is made with the quota before the launch, which gets the placement; it goes when the VM stops")
    func createdBeforeLaunchRemovedAfterExit() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(harness.config("web"))
            let quota = ResourceQuota(cpuShares: 300, memoryMax: ByteSize(bytes: 512 << 20))
            #expect(harness.cgroups.calls == [.create(vm.id, quota)])
            let placement = try #require(harness.hypervisor.launchedCgroup(of: vm.id) ?? nil)
            #expect(placement.directories == [RecordingCgroupController.directory(of: vm.id)])
            #expect(vm.cgroup == CgroupStatus(mechanism: .v2, paths: [RecordingCgroupController.directory(of: vm.id)], enforced: true))
            #expect(harness.store.vms.first?.cgroup == vm.cgroup, "the record keeps the status")
            #expect(harness.cgroups.liveCgroups == [vm.id])

            let stopped = try await manager.stop("web")
            #expect(stopped.stopReason == .stopped)
            #expect(harness.cgroups.liveCgroups.isEmpty)
            #expect(harness.cgroups.calls.last == .remove(vm.id))

            // Each start has its own cgroup.
            _ = try await manager.start("web")
            #expect(harness.cgroups.liveCgroups == [vm.id])
            _ = try await manager.kill("web")
            #expect(harness.cgroups.liveCgroups.isEmpty)
        }
    }

    @Test("a VM without a quota gets a cgroup too (OOM detection, PSI) at the default weight")
    func unlimitedVMGetsCgroup() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(harness.config("free", cpuShares: nil, memoryMax: nil))
            #expect(harness.cgroups.calls == [.create(vm.id, ResourceQuota())])
            #expect(vm.cgroup?.enforced == true)
        }
    }

    @Test("a failed launch removes the cgroup it was given")
    func failedLaunchRemovesCgroup() async throws {
        let harness = try Harness(script: { _ in .init(launchError: UniError(.hypervisorFailed, "qemu failed to start: boom")) })
        try await harness.run { manager in
            let created = try await manager.create(harness.config("bad"))
            await #expect(throws: UniError.self) { _ = try await manager.start("bad") }
            #expect(harness.cgroups.calls == [.create(created.id, created.config.quota), .oomKilled(created.id), .remove(created.id)])
            #expect(harness.cgroups.liveCgroups.isEmpty)
            #expect(try await manager.inspect("bad").stopReason == .failedToStart)
        }
    }

    @Test("a cgroup that cannot be made fails the start of a VM with a quota, naming why")
    func quotaNeedsCgroup() async throws {
        let cgroups = RecordingCgroupController()
        cgroups.failCreates(with: UniError(.unavailable, "cannot create cgroup '/x/uni/1': Permission denied"))
        let harness = try Harness(cgroups: cgroups)
        try await harness.run { manager in
            _ = try await manager.create(harness.config("limited"))
            await #expect {
                _ = try await manager.start("limited")
            } throws: { error in
                (error as? UniError)?.message == "cannot apply the resource quota of vm limited: cannot create cgroup '/x/uni/1': Permission denied"
            }
            let vm = try await manager.inspect("limited")
            #expect(vm.stopReason == .failedToStart)
            #expect(vm.lastError == "cannot apply the resource quota of vm limited: cannot create cgroup '/x/uni/1': Permission denied")
            #expect(harness.hypervisor.launchCount == 0)
        }
    }

    @Test("a cgroup that cannot be made does not stop a VM that asked for no limits")
    func noQuotaRunsWithoutCgroup() async throws {
        let cgroups = RecordingCgroupController()
        cgroups.failCreates(with: UniError(.unavailable, "cannot create cgroup '/x/uni/1': Permission denied"))
        let harness = try Harness(cgroups: cgroups)
        try await harness.run { manager in
            let vm = try await manager.run(harness.config("free", cpuShares: nil, memoryMax: nil))
            #expect(vm.state == .running)
            #expect(vm.cgroup == CgroupStatus(mechanism: .v2, enforced: false, reason: "cannot create cgroup '/x/uni/1': Permission denied"))
            #expect(harness.hypervisor.launchedCgroup(of: vm.id) == .some(nil))
        }
    }

    @Test("SIGKILL with an OOM kill in the cgroup is recorded as oom_killed, and on-failure restarts it")
    func oomKilled() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(harness.config("hungry"))
            harness.cgroups.reportOOMKill(of: vm.id)
            try #require(harness.hypervisor.instance(for: vm.id)).crash(signal: SIGKILL)
            #expect(await harness.eventually { (try? await manager.inspect("hungry").state) == .stopped })
            let stopped = try await manager.inspect("hungry")
            #expect(stopped.stopReason == .oomKilled)
            #expect(stopped.exitCode == 137)
            #expect(stopped.exits.last?.reason == .oomKilled)
            #expect(stopped.lastError == "qemu was killed by the kernel: its cgroup reached the memory ceiling (memory max 512M)")
            #expect(harness.store.vms.first?.stopReason == .oomKilled)
            #expect(harness.cgroups.calls.suffix(2) == [.oomKilled(vm.id), .remove(vm.id)], "asked before the cgroup goes")
            let events = manager.events.events(matching: VMEventFilter()).filter { $0.kind == .exit }
            #expect(events.last?.attributes["reason"] == "oom_killed")

            var policy = stopped
            policy.config.restartPolicy = RestartPolicy(mode: .onFailure)
            #expect(VMManager.restartIsDue(policy))
        }
    }

    @Test("SIGKILL without an OOM kill is a crash; a kill by hand stays killed even after an OOM")
    func sigkillWithoutOOM() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(harness.config("a"))
            try #require(harness.hypervisor.instance(for: vm.id)).crash(signal: SIGKILL)
            #expect(await harness.eventually { (try? await manager.inspect("a").state) == .stopped })
            #expect(try await manager.inspect("a").stopReason == .crashed)

            _ = try await manager.start("a")
            harness.cgroups.reportOOMKill(of: vm.id)
            #expect(try await manager.kill("a").stopReason == .killed)
        }
    }

    @Test("without cgroups: the VM runs, one warning for all VMs, and the record says the quota is not enforced and why")
    func noCgroups() async throws {
        let harness = try Harness(cgroups: RecordingCgroupController(mechanism: .none, unavailableReason: "cgroup root /nowhere does not exist"))
        try await harness.run { manager in
            let first = try await manager.run(harness.config("one"))
            let second = try await manager.run(harness.config("two"))
            for vm in [first, second] {
                #expect(vm.state == .running)
                #expect(vm.cgroup == CgroupStatus(mechanism: .none, enforced: false, reason: "cgroup root /nowhere does not exist"))
                #expect(harness.hypervisor.launchedCgroup(of: vm.id) == .some(nil))
            }
            let warnings = harness.logs.entries.filter { $0.level == .warning }
            #expect(warnings.count == 1)
            #expect(warnings.first?.message.description == "cgroups are not available: resource quotas (--cpu-shares, --memory-max) are recorded but not enforced")
            #expect(warnings.first?.metadata["reason"] == "cgroup root /nowhere does not exist")
            #expect(harness.cgroups.calls.isEmpty)
        }
    }

    @Test("inspect of a running VM carries its live pressure; a stopped one has none")
    func pressureInInspect() async throws {
        let harness = try Harness()
        let line = PressureLine(avg10: 2.5, avg60: 1, avg300: 0.5, totalMicroseconds: 1_000_000)
        harness.cgroups.reportPressure(ResourcePressure(cpu: PressureStall(some: line, full: line), memory: PressureStall(some: line)))
        try await harness.run { manager in
            _ = try await manager.run(harness.config("p"))
            let vm = try await manager.inspect("p")
            #expect(vm.pressure?.cpu?.some == line)
            #expect(vm.pressure?.io == nil)
            #expect(harness.store.vms.first?.pressure == nil, "never stored")
            let json = String(decoding: try JSONCoding.makeEncoder().encode(vm), as: UTF8.self)
            #expect(json.contains("\"total_us\":1000000"))
            #expect(await manager.pressureReadings().map(\.run) == [1])
            _ = try await manager.stop("p")
            #expect(try await manager.inspect("p").pressure == nil)
        }
    }

    @Test("a VM a dead daemon left running has its leftover cgroup removed at load")
    func leftoverRemovedAtLoad() async throws {
        let harness = try Harness()
        defer { harness.directory.remove() }
        var vm = VM(id: VMID.random(), name: "orphan", config: harness.config("orphan"), imageKind: .kernel, createdAt: Date())
        vm.state = .running
        vm.pid = 4242
        try await harness.store.save(vm)
        try await harness.manager.load()
        #expect(harness.cgroups.calls == [.removeLeftover(vm.id)])
    }
}
