import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// cgroup v1, for hybrid hosts whose `cpu` and `memory` controllers are v1
/// hierarchies (`<root>/cpu`, `<root>/memory`) and whose unified tree has
/// neither. Each VM gets `<root>/cpu/uni/<vm-id>` (`cpu.shares` = weight x
/// 1024 / 100, at least 2) and `<root>/memory/uni/<vm-id>`
/// (`memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` set to the
/// same value where swap accounting exists, so swap cannot stretch the
/// ceiling). OOM kills come from `memory.oom_control`'s `oom_kill` line.
///
/// When the host also mounts a cgroup2 tree at `<root>/unified` (hybrid
/// systemd hosts do), the process joins `<root>/unified/uni/<vm-id>` too:
/// it limits nothing, but gives the VM its pressure files (PSI).
public struct CgroupV1Controller: CgroupController {
    /// The folder holding the v1 hierarchies, e.g. `/sys/fs/cgroup`.
    public let root: String
    /// The weight of `<root>/cpu/uni`, every VM together, against the
    /// host's other processes (v2 scale; written as `cpu.shares`).
    public let vmsCPUWeight: Int
    public var mechanism: CgroupMechanism { .v1 }
    public var unavailableReason: String? { nil }

    /// A controller under `root`; injectable so tests run it against a
    /// temporary folder laid out like cgroupfs.
    public init(root: String, vmsCPUWeight: Int = CgroupControllers.defaultVMsCPUWeight) {
        self.root = root
        self.vmsCPUWeight = vmsCPUWeight
    }

    /// The `cpu` hierarchy's parent of every VM's cgroup.
    public var cpuParent: String { root + "/cpu/uni" }
    /// The `memory` hierarchy's parent of every VM's cgroup.
    public var memoryParent: String { root + "/memory/uni" }
    /// The unified (cgroup2) tree's parent, used for PSI only.
    public var unifiedParent: String { root + "/unified/uni" }

    /// Whether `<root>/cpu` and `<root>/memory` are v1 hierarchies.
    var hasHierarchies: Bool {
        CgroupFiles.exists(root + "/cpu/cpu.shares") && CgroupFiles.exists(root + "/memory/memory.limit_in_bytes")
    }

    /// Whether this process may make cgroups in both hierarchies.
    var isWritable: Bool {
        access(root + "/cpu", W_OK) == 0 && access(root + "/memory", W_OK) == 0
    }

    /// Whether the hierarchies are there and writable.
    var isAvailable: Bool { hasHierarchies && isWritable }

    /// Whether the unified tree can hold a VM's PSI cgroup.
    var hasUnifiedTree: Bool { CgroupFiles.exists(root + "/unified/cgroup.procs") }

    /// `cpu.shares` for a v2 weight: weight x 1024 / 100 (100 -> 1024, the
    /// v1 default), at least 2, the kernel's smallest.
    public static func shares(forWeight weight: Int) -> Int {
        max(2, weight * 1024 / 100)
    }

    public func create(for id: VMID, quota: ResourceQuota) throws -> CgroupPlacement {
        var made: [String] = []
        func undo() { for directory in made.reversed() { try? CgroupFiles.removeDirectory(directory) } }
        do {
            var directories: [String] = []
            var baseline: UInt64 = 0
            for parent in [cpuParent, memoryParent] {
                try CgroupFiles.makeDirectory(parent)
                if parent == cpuParent {
                    try CgroupFiles.writeIfChanged("\(CgroupV1Controller.shares(forWeight: vmsCPUWeight))", to: parent + "/cpu.shares",
                                                   what: "the cpu shares of every VM together")
                }
                let directory = parent + "/" + id.rawValue
                if try CgroupFiles.makeDirectory(directory) {
                    made.append(directory)
                } else {
                    guard CgroupFiles.processes(in: directory).isEmpty else {
                        throw UniError(.conflict, "cgroup '\(directory)' still holds processes of an earlier run of vm \(id)")
                    }
                    if parent == memoryParent { baseline = oomKills(in: directory) ?? 0 }
                }
                directories.append(directory)
            }
            var pressureDirectory: String?
            // PSI only: a unified tree that refuses the folder costs the
            // VM its pressure numbers, not its start.
            if hasUnifiedTree, (try? CgroupFiles.makeDirectory(unifiedParent)) != nil {
                let directory = unifiedParent + "/" + id.rawValue
                if let fresh = try? CgroupFiles.makeDirectory(directory), fresh || CgroupFiles.processes(in: directory).isEmpty {
                    if fresh { made.append(directory) }
                    directories.append(directory)
                    pressureDirectory = directory
                }
            }
            let placement = CgroupPlacement(vmID: id, mechanism: .v1, directories: directories, pressureDirectory: pressureDirectory,
                                            oomKillBaseline: baseline)
            try update(placement, quota: quota)
            return placement
        } catch {
            undo()
            throw error
        }
    }

    public func update(_ placement: CgroupPlacement, quota: ResourceQuota) throws {
        let cpu = cpuParent + "/" + placement.vmID.rawValue
        let memory = memoryParent + "/" + placement.vmID.rawValue
        let shares = CgroupV1Controller.shares(forWeight: quota.cpuShares ?? ResourceQuota.defaultCPUShares)
        try CgroupFiles.write("\(shares)", to: cpu + "/cpu.shares", what: "the cpu shares")
        let limit = quota.memoryMax.map { "\($0.bytes)" } ?? "-1"
        let limitFile = memory + "/memory.limit_in_bytes"
        let swapFile = memory + "/memory.memsw.limit_in_bytes"
        guard CgroupFiles.exists(swapFile) else {
            try CgroupFiles.write(limit, to: limitFile, what: "the memory ceiling")
            return
        }
        // The kernel keeps limit <= memsw limit at every step: raise memsw
        // first, lower the limit first.
        let current = CgroupFiles.read(limitFile).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? UInt64.max
        let raising = quota.memoryMax.map { $0.bytes >= current } ?? true
        if raising {
            try CgroupFiles.write(limit, to: swapFile, what: "the memory+swap ceiling")
            try CgroupFiles.write(limit, to: limitFile, what: "the memory ceiling")
        } else {
            try CgroupFiles.write(limit, to: limitFile, what: "the memory ceiling")
            try CgroupFiles.write(limit, to: swapFile, what: "the memory+swap ceiling")
        }
    }

    public func oomKilled(_ placement: CgroupPlacement) -> Bool {
        guard let kills = oomKills(in: memoryParent + "/" + placement.vmID.rawValue) else { return false }
        return kills > placement.oomKillBaseline
    }

    private func oomKills(in directory: String) -> UInt64? {
        CgroupFiles.keyedValue("oom_kill", in: directory + "/memory.oom_control")
    }

    public func pressure(of placement: CgroupPlacement) -> ResourcePressure? {
        placement.pressureDirectory.flatMap(CgroupFiles.pressure(in:))
    }

    public func remove(_ placement: CgroupPlacement) throws {
        var failure: (any Error)?
        for directory in placement.directories.reversed() {
            do { try CgroupFiles.removeDirectory(directory) } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    public func removeLeftover(of id: VMID) {
        for parent in [cpuParent, memoryParent, unifiedParent] {
            CgroupFiles.removeLeftover(parent + "/" + id.rawValue)
        }
    }
}
