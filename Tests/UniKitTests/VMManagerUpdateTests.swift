import Foundation
import Testing
@testable import UniKit
import UniKitTesting

/// `uni update` in the manager: live on a running VM, kept for the next
/// start, refused whole when a value or the hypervisor says no.
@Suite("VMManager.update (scripted hypervisor)")
struct VMManagerUpdateTests {
    typealias Harness = VMManagerTests.Harness

    @Test("a running disk VM takes new disk limits live; the record and the store keep them; an update event says so")
    func liveDiskUpdate() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "d", image: harness.diskImage, diskThrottle: DiskThrottle(iops: 50)))
            let updated = try await manager.update("d", ResourceUpdate(cpuShares: 300, diskIOPS: 20, diskBytesPerSecond: 1 << 20))
            #expect(updated.config.diskThrottle == DiskThrottle(iops: 20, bytesPerSecond: 1 << 20))
            #expect(updated.config.quota.cpuShares == 300)
            #expect(updated.state == .running)
            let instance = try #require(harness.hypervisor.instance(for: vm.id))
            #expect(instance.diskThrottles == [DiskThrottle(iops: 20, bytesPerSecond: 1 << 20)])
            #expect(harness.store.record(vm.id)?.config.diskThrottle == DiskThrottle(iops: 20, bytesPerSecond: 1 << 20))
            let event = try #require(manager.events.events(matching: VMEventFilter()).last)
            #expect(event.kind == .update)
            // This manager has no cgroups: the CPU weight is recorded, not enforced, so not all of it is live.
            #expect(event.attributes == ["live": "false", "cpu_shares": "300", "disk_iops": "20", "disk_bps": "1048576"])
            // Only the quota: the disk is not touched again.
            _ = try await manager.update("d", ResourceUpdate(cpuShares: 400))
            #expect(instance.diskThrottles.count == 1)
            _ = try await manager.update("d", ResourceUpdate(diskIOPS: 30))
            #expect(manager.events.events(matching: VMEventFilter()).last?.attributes == ["live": "true", "disk_iops": "30"])
        }
    }

    @Test("a stopped VM has only its record changed; disk limits on a kernel image and a ceiling below its memory are refused, the record untouched")
    func recordOnlyAndRefusals() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            _ = try await manager.create(VMConfig(name: "d", image: harness.diskImage, memory: .mebibytes(64)))
            let updated = try await manager.update("d", ResourceUpdate(memoryMax: .mebibytes(128), diskIOPS: 10))
            #expect(updated.state == .created)
            #expect(updated.config.quota.memoryMax == .mebibytes(128))
            #expect(manager.events.events(matching: VMEventFilter()).last?.attributes["live"] == "false")
            let low = await #expect(throws: UniError.self) { try await manager.update("d", ResourceUpdate(memoryMax: .mebibytes(32))) }
            #expect(low?.code == .invalidArgument)

            _ = try await manager.run(VMConfig(name: "k", image: harness.image))
            let kernel = await #expect(throws: UniError.self) { try await manager.update("k", ResourceUpdate(diskIOPS: 10)) }
            #expect(kernel?.code == .invalidArgument)
            #expect(kernel?.message.contains("it is a kernel image, which has no boot disk") == true)
            #expect(try await manager.inspect("k").config.diskThrottle == .unlimited)
            let nothing = await #expect(throws: UniError.self) { try await manager.update("k", ResourceUpdate()) }
            #expect(nothing?.message.hasPrefix("nothing to update") == true)
        }
    }

    @Test("a running VM that refuses the change keeps its record as it was")
    func hypervisorRefuses() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "d", image: harness.diskImage, diskThrottle: DiskThrottle(iops: 50)))
            let instance = try #require(harness.hypervisor.instance(for: vm.id))
            instance.refuseDiskThrottles(UniError(.hypervisorFailed, "QMP block_set_io_throttle failed: no"))
            let error = await #expect(throws: UniError.self) { try await manager.update("d", ResourceUpdate(diskIOPS: 5)) }
            #expect(error?.code == .hypervisorFailed)
            #expect(try await manager.inspect("d").config.diskThrottle == DiskThrottle(iops: 50))
            #expect(harness.store.record(vm.id)?.config.diskThrottle == DiskThrottle(iops: 50))
        }
    }

    @Test("update + rm -f of one VM at once: the update finishes in the gate, then the VM is removed; nothing comes back")
    func updateThenRemove() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "d", image: harness.diskImage))
            let instance = try #require(harness.hypervisor.instance(for: vm.id))
            let held = instance.suspendNextThrottle()
            async let update = VMManagerRaceTests.outcome { try await manager.update("d", ResourceUpdate(diskIOPS: 5)) }
            await held.waitUntilReached()
            async let remove = VMManagerRaceTests.outcome { try await manager.remove("d", force: true) }
            held.release()
            let (updated, removed) = await (update, remove)
            #expect((try? updated.get())?.config.diskThrottle.iops == 5)
            #expect((try? removed.get()) != nil)
            #expect(harness.store.vms.isEmpty)
            #expect(await manager.list(all: true).isEmpty)
            await VMManagerRaceTests.checkInvariants(harness, manager)
        }
    }

    @Test("stop while an update waits on the hypervisor: the stop waits its turn; the VM ends stopped with the new limits")
    func updateThenStop() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(VMConfig(name: "d", image: harness.diskImage))
            let instance = try #require(harness.hypervisor.instance(for: vm.id))
            let held = instance.suspendNextThrottle()
            async let update = VMManagerRaceTests.outcome { try await manager.update("d", ResourceUpdate(diskBytesPerSecond: 4096)) }
            await held.waitUntilReached()
            async let stop = VMManagerRaceTests.outcome { try await manager.stop("d") }
            held.release()
            _ = await (update, stop)
            let final = try await manager.inspect("d")
            #expect(final.state == .stopped)
            #expect(final.config.diskThrottle == DiskThrottle(bytesPerSecond: 4096))
            await VMManagerRaceTests.checkInvariants(harness, manager)
        }
    }
}

/// `uni update` of the quota: through the running VM's cgroup.
@Suite("VMManager.update of the quota (recording cgroup controller)")
struct VMManagerQuotaUpdateTests {
    typealias Harness = VMManagerCgroupTests.Harness

    @Test("a running VM's cgroup takes the new quota at once; a stopped VM's record only changes")
    func liveQuota() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(harness.config("web"))
            let updated = try await manager.update("web", ResourceUpdate(cpuShares: 900, memoryMax: ByteSize(bytes: 0)))
            #expect(updated.config.quota == ResourceQuota(cpuShares: 900))
            #expect(harness.cgroups.calls.last == .update(vm.id, ResourceQuota(cpuShares: 900)))
            #expect(manager.events.events(matching: VMEventFilter()).last?.attributes["live"] == "true")
            _ = try await manager.stop("web")
            let calls = harness.cgroups.calls.count
            _ = try await manager.update("web", ResourceUpdate(cpuShares: 50))
            #expect(harness.cgroups.calls.count == calls, "no cgroup while stopped")
            _ = try await manager.start("web")
            #expect(harness.cgroups.calls.contains(.create(vm.id, ResourceQuota(cpuShares: 50))), "the next start takes the record's quota")
        }
    }

    @Test("a cgroup that refuses the quota leaves the record as it was")
    func refused() async throws {
        let harness = try Harness()
        try await harness.run { manager in
            let vm = try await manager.run(harness.config("web"))
            harness.cgroups.failUpdates(with: UniError(.unavailable, "cannot write memory.max: Device or resource busy"))
            let error = await #expect(throws: UniError.self) { try await manager.update("web", ResourceUpdate(memoryMax: .mebibytes(300))) }
            #expect(error?.message == "cannot write memory.max: Device or resource busy: the VM uses more memory than that now; give a higher --memory-max")
            #expect(error?.code == .conflict)
            #expect(try await manager.inspect("web").config.quota.memoryMax == ByteSize(bytes: 512 << 20))
            // What the controller may have written before failing is put back.
            #expect(harness.cgroups.calls.suffix(2) == [.update(vm.id, ResourceQuota(cpuShares: 300, memoryMax: .mebibytes(300))),
                                                        .update(vm.id, ResourceQuota(cpuShares: 300, memoryMax: ByteSize(bytes: 512 << 20)))])
        }
    }

    @Test("a host without cgroups records the new quota and says it is not live")
    func withoutCgroups() async throws {
        let harness = try Harness(cgroups: RecordingCgroupController(mechanism: .none))
        try await harness.run { manager in
            _ = try await manager.run(harness.config("web"))
            let updated = try await manager.update("web", ResourceUpdate(cpuShares: 700))
            #expect(updated.config.quota.cpuShares == 700)
            #expect(manager.events.events(matching: VMEventFilter()).last?.attributes["live"] == "false")
        }
    }
}
