import Logging
import UniCore

extension VMManager {
    /// Changes a VM's limits (`uni update`): a running VM takes them at once
    /// (the disk through the hypervisor, the rest through its cgroup), and
    /// the record keeps them for its next start. A stopped or created VM
    /// only has its record changed.
    /// - Returns: the updated record.
    /// - Throws: ``UniError``: `invalidArgument` for a value out of range, a
    ///   memory ceiling below the guest memory, or disk limits on a kernel
    ///   image; `notFound`; `hypervisorFailed` when the running VM refused
    ///   the change (the record is then left as it was); `storeFailed`.
    public func update(_ reference: String, _ update: ResourceUpdate) async throws -> VM {
        try await traced(.update, reference: reference) {
            try await self.withGate(reference) { id, vm in try await self.updateInGate(id, vm, update) }
        }
    }

    private func updateInGate(_ id: VMID, _ vm: VM, _ update: ResourceUpdate) async throws -> VM {
        let config = try update.applied(to: vm.config)
        try config.validate(for: vm.imageKind)
        // Live only while running: a stopping VM is on its way out, and
        // any other state has no process; all take the record's values
        // at their next start.
        let live = vm.state == .running ? runtimes[id] : nil
        let placement = live == nil ? nil : cgroupPlacement(of: id)
        let quotaChanged = config.quota != vm.config.quota, diskChanged = config.diskThrottle != vm.config.diskThrottle
        if let placement, quotaChanged {
            do {
                try backends.cgroups.update(placement, quota: config.quota)
            } catch {
                // A controller writes file by file: put back what it wrote.
                try? backends.cgroups.update(placement, quota: vm.config.quota)
                let message = (error as? UniError)?.message ?? "\(error)"
                guard message.contains("Device or resource busy") else { throw error }
                throw UniError(.conflict, message + ": the VM uses more memory than that now; give a higher --memory-max", cause: error)
            }
        }
        // The record says what the VM runs with: a later step that fails
        // puts the earlier ones back.
        func revert(disk: Bool) async {
            if let placement, quotaChanged { try? backends.cgroups.update(placement, quota: vm.config.quota) }
            if disk, let live { try? await live.instance.setDiskThrottle(vm.config.diskThrottle) }
        }
        if let live, diskChanged {
            do {
                try await live.instance.setDiskThrottle(config.diskThrottle)
            } catch {
                await revert(disk: false)
                throw error
            }
        }
        var updated = vm
        updated.config = config
        do {
            try await commit(updated, from: vm.state)
        } catch {
            await revert(disk: diskChanged)
            throw error
        }
        // `live`: the running VM took the new limits; a quota change on a
        // host without cgroups is recorded but not enforced.
        var attributes = ["live": live == nil || (quotaChanged && placement == nil) ? "false" : "true"]
        if let cpuShares = update.cpuShares { attributes["cpu_shares"] = "\(cpuShares)" }
        if let memoryMax = update.memoryMax { attributes["memory_max_bytes"] = "\(memoryMax.bytes)" }
        if let iops = update.diskIOPS { attributes["disk_iops"] = "\(iops)" }
        if let bps = update.diskBytesPerSecond { attributes["disk_bps"] = "\(bps)" }
        var metadata: Logger.Metadata = [LogKeys.vmID: "\(id)", LogKeys.vmName: "\(vm.name)", "live": .stringConvertible(attributes["live"] == "true")]
        if let cpuShares = update.cpuShares { metadata["cpu_shares"] = .stringConvertible(cpuShares) }
        if let memoryMax = update.memoryMax { metadata["memory_max_bytes"] = .stringConvertible(memoryMax.bytes) }
        if let iops = update.diskIOPS { metadata["disk_iops"] = .stringConvertible(iops) }
        if let bps = update.diskBytesPerSecond { metadata["disk_bps"] = .stringConvertible(bps) }
        logger.info("vm limits updated", metadata: metadata)
        record(.update, updated, attributes)
        return updated
    }
}
