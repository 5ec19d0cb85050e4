import Foundation

/// cgroup v2: each VM in `<root>/uni/<vm-id>`, its weight in `cpu.weight`
/// and its ceiling in `memory.max` (with `memory.swap.max` 0, so swap
/// cannot stretch the ceiling), OOM kills from `memory.events`, pressure
/// from `cpu.pressure`, `memory.pressure`, `io.pressure`.
///
/// `<root>/uni` gets the CPU weight of every VM together
/// (``CgroupControllers/defaultVMsCPUWeight``).
///
/// `+cpu +memory` are enabled in `cgroup.subtree_control` of `<root>` and
/// `<root>/uni` when they are not yet. `<root>/uni` itself is kept: other
/// daemons on the host may use it.
public struct CgroupV2Controller: CgroupController {
    /// The cgroup2 mount (or a delegated subtree), e.g. `/sys/fs/cgroup`.
    public let root: String
    /// The `cpu.weight` of `<root>/uni`, every VM together, against the
    /// host's other processes.
    public let vmsCPUWeight: Int
    public var mechanism: CgroupMechanism { .v2 }
    public var unavailableReason: String? { nil }

    /// A controller under `root`; injectable so tests run it against a
    /// temporary folder laid out like cgroupfs.
    public init(root: String, vmsCPUWeight: Int = CgroupControllers.defaultVMsCPUWeight) {
        self.root = root
        self.vmsCPUWeight = vmsCPUWeight
    }

    /// `<root>/uni`: the parent of every VM's cgroup.
    public var parent: String { root + "/uni" }

    /// The cgroup folder of VM `id`.
    public func directory(of id: VMID) -> String { parent + "/" + id.rawValue }

    public func create(for id: VMID, quota: ResourceQuota) throws -> CgroupPlacement {
        try enableControllers(in: root)
        try CgroupFiles.makeDirectory(parent)
        try CgroupFiles.writeIfChanged("\(vmsCPUWeight)", to: parent + "/cpu.weight", what: "the cpu weight of every VM together")
        try enableControllers(in: parent)
        let directory = directory(of: id)
        let made = try CgroupFiles.makeDirectory(directory)
        if !made, !CgroupFiles.processes(in: directory).isEmpty {
            throw UniError(.conflict, "cgroup '\(directory)' still holds processes of an earlier run of vm \(id)")
        }
        let placement = CgroupPlacement(vmID: id, mechanism: .v2, directories: [directory], pressureDirectory: directory,
                                        oomKillBaseline: made ? 0 : CgroupFiles.keyedValue("oom_kill", in: directory + "/memory.events") ?? 0)
        do {
            try update(placement, quota: quota)
        } catch {
            if made { try? CgroupFiles.removeDirectory(directory) }
            throw error
        }
        return placement
    }

    public func update(_ placement: CgroupPlacement, quota: ResourceQuota) throws {
        let directory = directory(of: placement.vmID)
        let weight = quota.cpuShares ?? ResourceQuota.defaultCPUShares
        try CgroupFiles.write("\(weight)", to: directory + "/cpu.weight", what: "the cpu weight")
        let ceiling = quota.memoryMax.map { "\($0.bytes)" } ?? "max"
        if CgroupFiles.exists(directory + "/memory.swap.max") {
            try CgroupFiles.write(quota.memoryMax == nil ? "max" : "0", to: directory + "/memory.swap.max", what: "the swap ceiling")
        }
        try CgroupFiles.write(ceiling, to: directory + "/memory.max", what: "the memory ceiling")
    }

    public func oomKilled(_ placement: CgroupPlacement) -> Bool {
        guard let kills = CgroupFiles.keyedValue("oom_kill", in: directory(of: placement.vmID) + "/memory.events") else { return false }
        return kills > placement.oomKillBaseline
    }

    public func pressure(of placement: CgroupPlacement) -> ResourcePressure? {
        placement.pressureDirectory.flatMap(CgroupFiles.pressure(in:))
    }

    public func remove(_ placement: CgroupPlacement) throws {
        for directory in placement.directories.reversed() { try CgroupFiles.removeDirectory(directory) }
    }

    public func removeLeftover(of id: VMID) {
        CgroupFiles.removeLeftover(directory(of: id))
    }

    /// Adds `cpu` and `memory` to `<folder>/cgroup.subtree_control` unless it lists them.
    private func enableControllers(in folder: String) throws {
        let path = folder + "/cgroup.subtree_control"
        let enabled = Set((CgroupFiles.read(path) ?? "").split(whereSeparator: \.isWhitespace).map(String.init))
        guard !enabled.isSuperset(of: ["cpu", "memory"]) else { return }
        try CgroupFiles.write("+cpu +memory", to: path, what: "the enabled controllers")
    }
}
