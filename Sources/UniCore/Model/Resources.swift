#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A VM's share of the host, enforced by its cgroup (`uni run --cpu-shares
/// --memory-max`, changed live by `uni update`).
///
/// `nil` fields are not limited: the cgroup keeps the kernel's default
/// (a CPU weight of 100, no memory ceiling).
public struct ResourceQuota: Codable, Sendable, Hashable {
    /// The relative CPU weight against other VMs, 1-10000 (cgroup v2
    /// `cpu.weight`; on cgroup v1 `cpu.shares` = weight x 1024 / 100).
    public var cpuShares: Int?
    /// The most memory the VM's QEMU process may use, guest memory and
    /// QEMU's own together (`memory.max`, v1 `memory.limit_in_bytes`).
    /// Beyond it the kernel OOM-kills QEMU.
    public var memoryMax: ByteSize?

    /// The CPU weight a cgroup has when none is set.
    public static let defaultCPUShares = 100
    /// The allowed CPU weights (cgroup v2's `cpu.weight` range).
    public static let cpuSharesRange = 1...10_000

    /// A quota; `nil` fields are not limited.
    public init(cpuShares: Int? = nil, memoryMax: ByteSize? = nil) {
        self.cpuShares = cpuShares
        self.memoryMax = memoryMax
    }

    /// Whether nothing is limited.
    public var isUnlimited: Bool { cpuShares == nil && memoryMax == nil }

    /// Checks the weight's range and that the ceiling leaves room for `memory`.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the value and what is allowed.
    public func validate(guestMemory memory: ByteSize) throws {
        if let cpuShares, !ResourceQuota.cpuSharesRange.contains(cpuShares) {
            throw UniError.invalid("invalid cpu shares '\(cpuShares)': use a whole number from 1 to 10000 (default 100)")
        }
        if let memoryMax, memoryMax < memory {
            throw UniError.invalid("invalid memory max '\(memoryMax)': it must be at least the VM's memory (\(memory)); QEMU needs some more of its own")
        }
    }

    /// Parses `--cpu-shares`' text.
    /// - Throws: ``UniError`` naming the text and the range.
    public static func parseCPUShares(_ text: String) throws -> Int {
        guard let value = Int(text), cpuSharesRange.contains(value) else {
            throw UniError.invalid("invalid --cpu-shares '\(text.escapingControlCharacters)': use a whole number from 1 to 10000 (default 100)")
        }
        return value
    }

    enum CodingKeys: String, CodingKey {
        case cpuShares = "cpu_shares", memoryMax = "memory_max_bytes"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cpuShares = try c.decodeWholeNumberIfPresent(Int.self, forKey: .cpuShares, allowed: "1-10000")
        memoryMax = try c.decodeWholeNumberIfPresent(UInt64.self, forKey: .memoryMax, allowed: "bytes").map(ByteSize.init(bytes:))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(cpuShares, forKey: .cpuShares)
        try c.encodeIfPresent(memoryMax?.bytes, forKey: .memoryMax)
    }
}

/// Limits on the boot disk's I/O, applied by QEMU's block throttling
/// (`throttling.iops-total` / `throttling.bps-total` on the `-drive`, QMP
/// `block_set_io_throttle` while it runs). Disk images only: a kernel image
/// has no disk. 0 means no limit.
public struct DiskThrottle: Codable, Sendable, Hashable {
    /// Read and write operations per second together; 0: no limit.
    public var iops: UInt64
    /// Bytes read and written per second together; 0: no limit.
    public var bytesPerSecond: UInt64

    /// No limit.
    public static let unlimited = DiskThrottle()
    /// QEMU's largest throttle value (`THROTTLE_VALUE_MAX`, 10^15).
    public static let maximumValue: UInt64 = 1_000_000_000_000_000

    /// Limits; 0 is no limit.
    public init(iops: UInt64 = 0, bytesPerSecond: UInt64 = 0) {
        self.iops = iops
        self.bytesPerSecond = bytesPerSecond
    }

    /// Whether nothing is limited.
    public var isUnlimited: Bool { iops == 0 && bytesPerSecond == 0 }

    /// Checks both values against QEMU's bound.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the value and the range.
    public func validate() throws {
        if iops > DiskThrottle.maximumValue {
            throw UniError.invalid("invalid disk iops '\(iops)': use a whole number from 0 (no limit) to \(DiskThrottle.maximumValue)")
        }
        if bytesPerSecond > DiskThrottle.maximumValue {
            throw UniError.invalid("invalid disk bps '\(bytesPerSecond)': use a size from 0 (no limit) to \(DiskThrottle.maximumValue) bytes")
        }
    }

    /// Parses `--disk-iops`' text: a whole number, 0 for no limit.
    /// - Throws: ``UniError`` naming the text and the range.
    public static func parseIOPS(_ text: String) throws -> UInt64 {
        guard let value = UInt64(text), value <= maximumValue else {
            throw UniError.invalid("invalid --disk-iops '\(text.escapingControlCharacters)': use a whole number from 0 (no limit) to \(maximumValue)")
        }
        return value
    }

    /// Parses `--disk-bps`' text: a size such as `10M`, 0 for no limit.
    /// - Throws: ``UniError`` naming the text and the form.
    public static func parseBytesPerSecond(_ text: String) throws -> UInt64 {
        let size = try ByteSize(parsing: text, name: "--disk-bps")
        guard size.bytes <= maximumValue else {
            throw UniError.invalid("invalid --disk-bps '\(text.escapingControlCharacters)': at most \(maximumValue) bytes per second")
        }
        return size.bytes
    }

    enum CodingKeys: String, CodingKey {
        case iops, bytesPerSecond = "bps"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        iops = try c.decodeWholeNumberIfPresent(UInt64.self, forKey: .iops, allowed: "0-\(DiskThrottle.maximumValue)") ?? 0
        bytesPerSecond = try c.decodeWholeNumberIfPresent(UInt64.self, forKey: .bytesPerSecond, allowed: "0-\(DiskThrottle.maximumValue)") ?? 0
    }
}

/// A change of a VM's limits (`uni update`, `POST /v1/vms/{ref}/update`):
/// each field given replaces the VM's value; `nil` keeps it. The new values
/// apply to the running VM at once and are kept for its next start.
public struct ResourceUpdate: Codable, Sendable, Hashable {
    /// The new CPU weight, 1-10000.
    public var cpuShares: Int?
    /// The new memory ceiling; 0 removes it.
    public var memoryMax: ByteSize?
    /// The new IOPS limit of the boot disk; 0 removes it.
    public var diskIOPS: UInt64?
    /// The new bytes-per-second limit of the boot disk; 0 removes it.
    public var diskBytesPerSecond: UInt64?

    /// An update; `nil` fields are left as they are.
    public init(cpuShares: Int? = nil, memoryMax: ByteSize? = nil, diskIOPS: UInt64? = nil, diskBytesPerSecond: UInt64? = nil) {
        self.cpuShares = cpuShares
        self.memoryMax = memoryMax
        self.diskIOPS = diskIOPS
        self.diskBytesPerSecond = diskBytesPerSecond
    }

    /// Whether the update changes nothing.
    public var isEmpty: Bool { cpuShares == nil && memoryMax == nil && diskIOPS == nil && diskBytesPerSecond == nil }

    /// Whether it changes the boot disk's throttling.
    public var changesDisk: Bool { diskIOPS != nil || diskBytesPerSecond != nil }

    /// Whether it changes the cgroup's limits.
    public var changesQuota: Bool { cpuShares != nil || memoryMax != nil }

    /// `config` with the update applied, checked as a whole (a memory
    /// ceiling below the guest memory is refused, as at create).
    /// - Throws: ``UniError`` (`invalidArgument`) naming the bad value.
    public func applied(to config: VMConfig) throws -> VMConfig {
        guard !isEmpty else {
            throw UniError.invalid("nothing to update: give at least one of cpu_shares, memory_max_bytes, disk_iops, disk_bps (uni update: --cpu-shares, --memory-max, --disk-iops, --disk-bps)")
        }
        var config = config
        if let cpuShares { config.quota.cpuShares = cpuShares }
        if let memoryMax { config.quota.memoryMax = memoryMax.bytes == 0 ? nil : memoryMax }
        if let diskIOPS { config.diskThrottle.iops = diskIOPS }
        if let diskBytesPerSecond { config.diskThrottle.bytesPerSecond = diskBytesPerSecond }
        try config.quota.validate(guestMemory: config.effectiveMemory)
        try config.diskThrottle.validate()
        return config
    }

    enum CodingKeys: String, CodingKey {
        case cpuShares = "cpu_shares", memoryMax = "memory_max_bytes", diskIOPS = "disk_iops", diskBytesPerSecond = "disk_bps"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cpuShares = try c.decodeWholeNumberIfPresent(Int.self, forKey: .cpuShares, allowed: "1-10000")
        memoryMax = try c.decodeWholeNumberIfPresent(UInt64.self, forKey: .memoryMax, allowed: "bytes, 0 for no limit").map(ByteSize.init(bytes:))
        diskIOPS = try c.decodeWholeNumberIfPresent(UInt64.self, forKey: .diskIOPS, allowed: "0-\(DiskThrottle.maximumValue)")
        diskBytesPerSecond = try c.decodeWholeNumberIfPresent(UInt64.self, forKey: .diskBytesPerSecond, allowed: "0-\(DiskThrottle.maximumValue)")
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(cpuShares, forKey: .cpuShares)
        try c.encodeIfPresent(memoryMax?.bytes, forKey: .memoryMax)
        try c.encodeIfPresent(diskIOPS, forKey: .diskIOPS)
        try c.encodeIfPresent(diskBytesPerSecond, forKey: .diskBytesPerSecond)
    }
}
