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
        if let live, config.diskThrottle != vm.config.diskThrottle {
            try await live.instance.setDiskThrottle(config.diskThrottle)
        }
        var updated = vm
        updated.config = config
        do {
            try await commit(updated, from: vm.state)
        } catch {
            // The record says what the VM runs with: put the old limits back.
            if let live, config.diskThrottle != vm.config.diskThrottle { try? await live.instance.setDiskThrottle(vm.config.diskThrottle) }
            throw error
        }
        var attributes = ["live": live == nil ? "false" : "true"]
        if let cpuShares = update.cpuShares { attributes["cpu_shares"] = "\(cpuShares)" }
        if let memoryMax = update.memoryMax { attributes["memory_max_bytes"] = "\(memoryMax.bytes)" }
        if let iops = update.diskIOPS { attributes["disk_iops"] = "\(iops)" }
        if let bps = update.diskBytesPerSecond { attributes["disk_bps"] = "\(bps)" }
        var metadata: Logger.Metadata = [LogKeys.vmID: "\(id)", LogKeys.vmName: "\(vm.name)"]
        for (key, value) in attributes { metadata[key] = "\(value)" }
        logger.info("vm limits updated", metadata: metadata)
        record(.update, updated, attributes)
        return updated
    }
}
