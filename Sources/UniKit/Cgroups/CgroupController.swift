import Foundation

/// Holds each VM's QEMU process in a cgroup of its own: its
/// ``ResourceQuota`` applied by the kernel, its OOM kills counted, its
/// pressure (PSI) measured. ``VMManager`` drives it through
/// ``VMManagerBackends``.
///
/// Implementations are named for their mechanism: ``CgroupV2Controller``,
/// ``CgroupV1Controller`` (hybrid hosts), ``NoCgroupController`` (nothing
/// usable: quotas are recorded, not enforced). ``CgroupControllers/detect(root:vmsCPUWeight:)``
/// picks one for a host; `RecordingCgroupController` in UniKitTesting
/// records calls for tests.
///
/// A VM's cgroup is made, with its quota already written, before QEMU is
/// spawned; the child process joins it between its fork and its exec
/// (``CgroupPlacement/procsFiles``), so the guest never runs unlimited.
public protocol CgroupController: Sendable {
    /// The mechanism this controller uses.
    var mechanism: CgroupMechanism { get }

    /// Why quotas are not enforced, or `nil` when they are: set only when
    /// ``mechanism`` is ``CgroupMechanism/none``.
    var unavailableReason: String? { get }

    /// Makes the cgroup of one run of VM `id` with `quota` applied, and
    /// says where the process must go. A cgroup of `id` left by an earlier
    /// run is removed first when it is empty.
    /// - Throws: ``UniError`` naming the cgroup folder or file and the value
    ///   that could not be written; nothing is left behind.
    func create(for id: VMID, quota: ResourceQuota) throws -> CgroupPlacement

    /// Applies `quota` to an existing cgroup: each `nil` field goes back to
    /// the kernel's default (CPU weight 100, no memory ceiling).
    /// - Throws: ``UniError`` naming the file and value (for instance a
    ///   memory ceiling below what the process uses now and cannot give back).
    func update(_ placement: CgroupPlacement, quota: ResourceQuota) throws

    /// Whether the kernel OOM-killed a process of the cgroup (its `oom_kill`
    /// count is above 0). Asked once the process has ended, before ``remove(_:)``.
    func oomKilled(_ placement: CgroupPlacement) -> Bool

    /// The cgroup's pressure now, or `nil` when the kernel offers none here.
    func pressure(of placement: CgroupPlacement) -> ResourcePressure?

    /// Removes the cgroup once its process has ended.
    /// - Throws: ``UniError`` naming the folder that could not be removed.
    func remove(_ placement: CgroupPlacement) throws

    /// Removes the cgroup a dead daemon may have left for VM `id`, once
    /// the orphan process just killed in it is gone (waiting a few seconds
    /// at most); does nothing when there is none.
    func removeLeftover(of id: VMID)
}

/// Where one run of a VM lives: the cgroup folders its process joins, one
/// per hierarchy (v2: one; v1: `cpu`, `memory`, and the unified tree for
/// PSI when there is one).
public struct CgroupPlacement: Sendable, Hashable {
    /// The VM.
    public var vmID: VMID
    /// How the cgroups are managed.
    public var mechanism: CgroupMechanism
    /// The cgroup folders the process joins.
    public var directories: [String]
    /// The folder holding `cpu.pressure`, `memory.pressure` and `io.pressure`, if any.
    public var pressureDirectory: String?
    /// The cgroup's `oom_kill` count when it was made (0 for a new cgroup;
    /// an empty one left by an earlier run is reused with its count).
    public var oomKillBaseline: UInt64

    /// A placement.
    public init(vmID: VMID, mechanism: CgroupMechanism, directories: [String], pressureDirectory: String? = nil, oomKillBaseline: UInt64 = 0) {
        self.vmID = vmID
        self.mechanism = mechanism
        self.directories = directories
        self.pressureDirectory = pressureDirectory
        self.oomKillBaseline = oomKillBaseline
    }

    /// The files the child process writes "0" to (which moves the writer
    /// itself) before it execs: the cgroups that hold its limits.
    ///
    /// v1 hierarchies get their `tasks` file: it moves one thread, and the
    /// child is a single thread between its fork and its exec, so the move
    /// is the same; `cgroup.procs` takes the kernel's global threadgroup
    /// lock, whose RCU grace period cost ~7 ms of every start (measured on
    /// this project's hybrid hosts, docs/architecture.md "Cgroups"). v2 has
    /// no thread-level move across domains: its `cgroup.procs`.
    public var procsFiles: [String] {
        switch mechanism {
        case .v1: directories.filter { $0 != lateDirectory }.map { $0 + "/tasks" }
        case .v2, .none: directories.map { $0 + "/cgroup.procs" }
        }
    }

    /// A cgroup the process joins once it runs rather than before its
    /// exec: on v1 hosts, the unified tree's cgroup that only measures its
    /// pressure (PSI). It limits nothing, so nothing runs unlimited
    /// meanwhile, and its `cgroup.procs` write (the ~7 ms lock above) stays
    /// off the path to the guest's first line.
    public var lateDirectory: String? { mechanism == .v1 ? pressureDirectory : nil }
}

/// Picks the controller a host supports.
public enum CgroupControllers {
    /// The cgroup root when none is given (`unid --cgroup-root`).
    public static let defaultRoot = "/sys/fs/cgroup"

    /// The CPU weight of the `uni` cgroup, every VM together, against the
    /// host's other processes when none is given (`unid --vms-cpu-weight`):
    /// a tenth of the kernel's default (100).
    ///
    /// Guests still take every idle cycle; when the CPUs are contended,
    /// unid and the host's services outrank them, so the API keeps
    /// answering with 100 busy guests on 2 cores (docs/performance.md,
    /// "Density"). Each VM's own weight (`--cpu-shares`) divides the
    /// group's share among the VMs.
    public static let defaultVMsCPUWeight = 10

    /// Parses `unid --vms-cpu-weight`: a whole number in ``ResourceQuota/cpuSharesRange``.
    /// - Throws: ``UniError`` naming the text and the range.
    public static func parseVMsCPUWeight(_ text: String) throws -> Int {
        guard let value = Int(text), ResourceQuota.cpuSharesRange.contains(value) else {
            throw UniError.invalid("invalid --vms-cpu-weight '\(text.escapingControlCharacters)': use a whole number from 1 to 10000 (default \(defaultVMsCPUWeight); the kernel's default is 100)")
        }
        return value
    }

    /// The controller for the cgroup filesystem at `root`: cgroup v2 when
    /// `<root>/cgroup.controllers` lists `cpu` and `memory`; else cgroup v1
    /// when `<root>/cpu` and `<root>/memory` are v1 hierarchies (PSI through
    /// `<root>/unified` when that cgroup2 tree is there); else
    /// ``NoCgroupController`` with the reason. `vmsCPUWeight` goes to the
    /// parent of every VM's cgroup.
    public static func detect(root: String = defaultRoot, vmsCPUWeight: Int = defaultVMsCPUWeight) -> any CgroupController {
        let root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        if let controllers = CgroupFiles.read(root + "/cgroup.controllers") {
            let available = Set(controllers.split(whereSeparator: \.isWhitespace).map(String.init))
            if available.isSuperset(of: ["cpu", "memory"]) {
                return CgroupV2Controller(root: root, vmsCPUWeight: vmsCPUWeight)
            }
        }
        let v1 = CgroupV1Controller(root: root, vmsCPUWeight: vmsCPUWeight)
        if v1.isAvailable {
            return v1
        }
        var reason: String
        if FileManager.default.fileExists(atPath: root + "/cgroup.controllers") {
            let listed = CgroupFiles.read(root + "/cgroup.controllers")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            reason = "the cgroup v2 tree at \(root) lacks the cpu and memory controllers (it has: \(listed.isEmpty ? "none" : listed))"
        } else if FileManager.default.fileExists(atPath: root) {
            reason = "\(root) has neither a cgroup v2 tree with cpu and memory nor cgroup v1 cpu and memory hierarchies"
        } else {
            reason = "cgroup root \(root) does not exist"
        }
        if v1.hasHierarchies && !v1.isWritable {
            reason = "the cgroup v1 hierarchies under \(root) cannot be written (unid needs root or a delegated cgroup)"
        }
        return NoCgroupController(reason: reason)
    }
}

/// No cgroups: every VM runs, and its quota is recorded but not enforced
/// (``VMManager`` logs one warning and writes ``unavailableReason`` in the record).
public struct NoCgroupController: CgroupController {
    public let unavailableReason: String?
    public var mechanism: CgroupMechanism { .none }

    /// A controller that places nothing, for `reason`.
    public init(reason: String) {
        unavailableReason = reason
    }

    /// - Throws: always ``UniError`` (`unavailable`) with the reason.
    public func create(for id: VMID, quota: ResourceQuota) throws -> CgroupPlacement {
        throw UniError(.unavailable, "cgroups are not available: \(unavailableReason ?? "unknown reason")")
    }

    /// - Throws: always ``UniError`` (`unavailable`) with the reason.
    public func update(_ placement: CgroupPlacement, quota: ResourceQuota) throws {
        throw UniError(.unavailable, "cgroups are not available: \(unavailableReason ?? "unknown reason")")
    }

    public func oomKilled(_ placement: CgroupPlacement) -> Bool { false }
    public func pressure(of placement: CgroupPlacement) -> ResourcePressure? { nil }
    public func remove(_ placement: CgroupPlacement) throws {}
    public func removeLeftover(of id: VMID) {}
}
