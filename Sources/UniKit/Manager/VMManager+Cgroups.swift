import Foundation
import Logging

extension VMManager {
    /// The cgroup of a VM's next run and what its record says about it.
    struct CgroupSetup {
        var placement: CgroupPlacement?
        var status: CgroupStatus
    }

    /// Makes the cgroup of `vm`'s next run, its quota applied, before the
    /// launch. Without usable cgroups the VM runs unenforced: one warning
    /// per manager, the reason in the record. A VM that asked for no limits
    /// runs without a cgroup when one cannot be made (it only loses OOM
    /// detection and PSI); one that asked for limits does not start.
    /// Callers hold the VM's gate.
    /// - Throws: ``UniError`` naming the cgroup, for a VM with a quota.
    func prepareCgroup(for vm: VM) throws -> CgroupSetup {
        let controller = backends.cgroups
        if let reason = controller.unavailableReason {
            if !vm.config.quota.isUnlimited, !warnedCgroupsUnavailable {
                warnedCgroupsUnavailable = true
                logger.warning("cgroups are not available: resource quotas (--cpu-shares, --memory-max) are recorded but not enforced", metadata: [
                    LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", LogKeys.reason: "\(reason)",
                ])
            }
            return CgroupSetup(placement: nil, status: CgroupStatus(mechanism: .none, enforced: false, reason: reason))
        }
        do {
            let placement = try controller.create(for: vm.id, quota: vm.config.quota)
            return CgroupSetup(placement: placement, status: CgroupStatus(mechanism: controller.mechanism, paths: placement.directories, enforced: true))
        } catch {
            let message = (error as? UniError)?.message ?? "\(error)"
            guard vm.config.quota.isUnlimited else {
                throw UniError(.unavailable, "cannot apply the resource quota of vm \(vm.name): \(message)", cause: error)
            }
            logger.warning("cannot create the vm's cgroup; it runs without one (no OOM detection, no pressure)", metadata: [
                LogKeys.vmID: "\(vm.id)", LogKeys.vmName: "\(vm.name)", LogKeys.error: "\(message)",
            ])
            return CgroupSetup(placement: nil, status: CgroupStatus(mechanism: controller.mechanism, enforced: false, reason: message))
        }
    }

    /// Moves the process `pid` of a run that has started into its
    /// placement's ``CgroupPlacement/lateDirectory``, if any. A failure
    /// costs the VM its pressure numbers, not its run: it is logged.
    func joinLateCgroup(_ placement: CgroupPlacement?, pid: Int32?, of id: VMID) {
        guard let directory = placement?.lateDirectory, let pid else { return }
        do {
            try CgroupFiles.write("\(pid)", to: directory + "/cgroup.procs", what: "the process")
        } catch {
            logger.warning("cannot move qemu into its pressure cgroup; the vm has no pressure numbers", metadata: [
                LogKeys.vmID: "\(id)", LogKeys.error: "\((error as? UniError)?.message ?? "\(error)")",
            ])
        }
    }

    /// Removes the cgroup of a run whose process has ended (or never ran).
    /// A failure is logged: the VM's state does not depend on it.
    func releaseCgroup(_ placement: CgroupPlacement?, of id: VMID) {
        guard let placement else { return }
        do {
            try backends.cgroups.remove(placement)
        } catch {
            logger.error("cannot remove vm cgroup", metadata: [LogKeys.vmID: "\(id)", LogKeys.error: "\(error)"])
        }
    }

    /// The cgroup the running process of `id` is in, if any (for `uni update`,
    /// which passes it to ``CgroupController/update(_:quota:)``).
    func cgroupPlacement(of id: VMID) -> CgroupPlacement? {
        runtimes[id]?.placement
    }

    /// The pressure (PSI) of `id`'s running process, when its cgroup has it.
    func pressure(of id: VMID) -> ResourcePressure? {
        runtimes[id]?.placement.flatMap { backends.cgroups.pressure(of: $0) }
    }

    /// The pressure of every running VM whose cgroup has it, for `/metrics`;
    /// `run` (the VM's start count) tells one cgroup's totals from the next's.
    public func pressureReadings() -> [PressureReading] {
        runtimes.keys.sorted().compactMap { id in
            guard let vm = table[id], let pressure = pressure(of: id) else { return nil }
            return PressureReading(vmID: id, run: vm.startCount, pressure: pressure)
        }
    }
}

/// One VM's cgroup pressure at one moment (``VMManager/pressureReadings()``).
public struct PressureReading: Sendable, Hashable {
    /// The VM.
    public var vmID: VMID
    /// Which run of it (its start count): each run has a new cgroup whose totals start at 0.
    public var run: Int
    /// What the kernel reported.
    public var pressure: ResourcePressure

    /// A reading.
    public init(vmID: VMID, run: Int, pressure: ResourcePressure) {
        self.vmID = vmID
        self.run = run
        self.pressure = pressure
    }
}
