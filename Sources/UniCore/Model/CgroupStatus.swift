#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How a host's kernel holds VMs to their ``ResourceQuota``.
public enum CgroupMechanism: String, Codable, Sendable, CaseIterable {
    /// cgroup v2 with the `cpu` and `memory` controllers (`cpu.weight`, `memory.max`).
    case v2
    /// cgroup v1 `cpu` and `memory` hierarchies, as on hybrid hosts
    /// (`cpu.shares`, `memory.limit_in_bytes`).
    case v1
    /// No usable cgroups: quotas are recorded but not enforced.
    case none
}

/// Where a VM's last run was placed and whether its quota held: the
/// record's `cgroup` object (docs/vm-record.md). Written at each start.
public struct CgroupStatus: Codable, Sendable, Hashable {
    /// The mechanism of the run.
    public var mechanism: CgroupMechanism
    /// The cgroup folders the QEMU process was placed in, one per hierarchy
    /// (empty without a cgroup). They exist while the process runs and are
    /// removed when it has ended.
    public var paths: [String]
    /// Whether the kernel enforces the VM's quota (true for a VM without a
    /// quota that sits in its own cgroup: there is nothing to hold it to).
    public var enforced: Bool
    /// Why the quota is not enforced, when it is not.
    public var reason: String?

    /// A status.
    public init(mechanism: CgroupMechanism, paths: [String] = [], enforced: Bool, reason: String? = nil) {
        self.mechanism = mechanism
        self.paths = paths
        self.enforced = enforced
        self.reason = reason
    }
}

/// Pressure stall information (PSI) of a VM's cgroup: how much of the time
/// its tasks waited for CPU, memory or I/O. Read live from `cpu.pressure`,
/// `memory.pressure` and `io.pressure`; a resource whose file cannot be
/// read is `nil`, never zeros.
public struct ResourcePressure: Codable, Sendable, Hashable {
    /// CPU pressure (`cpu.pressure`).
    public var cpu: PressureStall?
    /// Memory pressure (`memory.pressure`).
    public var memory: PressureStall?
    /// I/O pressure (`io.pressure`).
    public var io: PressureStall?

    /// A reading.
    public init(cpu: PressureStall? = nil, memory: PressureStall? = nil, io: PressureStall? = nil) {
        self.cpu = cpu
        self.memory = memory
        self.io = io
    }

    /// Whether no resource could be read.
    public var isEmpty: Bool { cpu == nil && memory == nil && io == nil }
}

/// One PSI file: the `some` line (at least one task stalled) and the
/// `full` line (all non-idle tasks stalled; absent for the CPU on old kernels).
public struct PressureStall: Codable, Sendable, Hashable {
    /// Time some task waited.
    public var some: PressureLine
    /// Time all tasks waited at once.
    public var full: PressureLine?

    /// A reading.
    public init(some: PressureLine, full: PressureLine? = nil) {
        self.some = some
        self.full = full
    }

    /// Parses a PSI file's text (`some avg10=0.00 avg60=0.00 avg300=0.00 total=0`,
    /// then the `full` line); `nil` when the `some` line is missing or malformed.
    public init?(parsing text: String) {
        var some: PressureLine?
        var full: PressureLine?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let kind = fields.first else { continue }
            let parsed = PressureLine(fields: fields.dropFirst())
            if kind == "some" { some = parsed } else if kind == "full" { full = parsed }
        }
        guard let some else { return nil }
        self.init(some: some, full: full)
    }
}

/// One line of a PSI file.
public struct PressureLine: Codable, Sendable, Hashable {
    /// The share of the last 10 s stalled, in percent.
    public var avg10: Double
    /// The share of the last 60 s stalled, in percent.
    public var avg60: Double
    /// The share of the last 300 s stalled, in percent.
    public var avg300: Double
    /// Microseconds stalled since the cgroup was made.
    public var totalMicroseconds: UInt64

    /// A line.
    public init(avg10: Double, avg60: Double, avg300: Double, totalMicroseconds: UInt64) {
        self.avg10 = avg10
        self.avg60 = avg60
        self.avg300 = avg300
        self.totalMicroseconds = totalMicroseconds
    }

    init?(fields: ArraySlice<Substring>) {
        var values: [Substring: Substring] = [:]
        for field in fields {
            let pair = field.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { values[pair[0]] = pair[1] }
        }
        guard let avg10 = values["avg10"].flatMap({ Double($0) }), let avg60 = values["avg60"].flatMap({ Double($0) }),
              let avg300 = values["avg300"].flatMap({ Double($0) }), let total = values["total"].flatMap({ UInt64($0) }) else { return nil }
        self.init(avg10: avg10, avg60: avg60, avg300: avg300, totalMicroseconds: total)
    }

    enum CodingKeys: String, CodingKey {
        case avg10, avg60, avg300, totalMicroseconds = "total_us"
    }
}
