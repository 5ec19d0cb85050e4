#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One sample of a VM's numbers, all read on the host (no agent in the guest).
///
/// Every number that could not be measured is `nil` (`null` in JSON, `-` in
/// tables), never 0: a VM without a network counter has no network bytes,
/// not zero of them. Counters are cumulative since the VM's QEMU started.
public struct VMStats: Codable, Sendable, Hashable {
    /// Where the process numbers came from.
    public enum Source: String, Codable, Sendable {
        /// `/proc/<pid>/stat` (Linux).
        case proc
        /// No `/proc`: only what the hypervisor itself reports.
        case fallback
    }

    /// The VM.
    public var vmID: VMID
    /// Its name when sampled.
    public var name: String
    /// When the sample was taken.
    public var sampledAt: Date
    /// Where the process numbers came from.
    public var source: Source
    /// CPU use between this sample and the previous one, in percent of one
    /// host core (100 = one core busy, as `docker stats`); `nil` for a
    /// VM's first sample.
    public var cpuPercent: Double?
    /// CPU time (user + system) of the QEMU process since it started, in seconds.
    public var cpuSeconds: Double?
    /// Resident memory of the QEMU process (`VmRSS`), in bytes.
    public var memoryRSSBytes: UInt64?
    /// Bytes the guest received over its network.
    public var networkReceivedBytes: UInt64?
    /// Bytes the guest sent over its network.
    public var networkTransmittedBytes: UInt64?
    /// Bytes read from the VM's disk.
    public var diskReadBytes: UInt64?
    /// Bytes written to the VM's disk.
    public var diskWrittenBytes: UInt64?
    /// Read operations on the VM's disk.
    public var diskReadOperations: UInt64?
    /// Write operations on the VM's disk.
    public var diskWriteOperations: UInt64?

    /// A sample with every number unavailable; set what was measured.
    public init(vmID: VMID, name: String, sampledAt: Date, source: Source) {
        self.vmID = vmID
        self.name = name
        self.sampledAt = sampledAt
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case vmID = "vm_id", name, sampledAt = "sampled_at", source
        case cpuPercent = "cpu_percent", cpuSeconds = "cpu_seconds", memoryRSSBytes = "memory_rss_bytes"
        case networkReceivedBytes = "network_rx_bytes", networkTransmittedBytes = "network_tx_bytes"
        case diskReadBytes = "disk_read_bytes", diskWrittenBytes = "disk_written_bytes"
        case diskReadOperations = "disk_read_ops", diskWriteOperations = "disk_write_ops"
    }

    /// Writes every field, unavailable ones as `null`: a reader sees what
    /// could not be measured rather than guessing from a missing key.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vmID, forKey: .vmID)
        try c.encode(name, forKey: .name)
        try c.encode(sampledAt, forKey: .sampledAt)
        try c.encode(source, forKey: .source)
        try c.encode(cpuPercent, forKey: .cpuPercent)
        try c.encode(cpuSeconds, forKey: .cpuSeconds)
        try c.encode(memoryRSSBytes, forKey: .memoryRSSBytes)
        try c.encode(networkReceivedBytes, forKey: .networkReceivedBytes)
        try c.encode(networkTransmittedBytes, forKey: .networkTransmittedBytes)
        try c.encode(diskReadBytes, forKey: .diskReadBytes)
        try c.encode(diskWrittenBytes, forKey: .diskWrittenBytes)
        try c.encode(diskReadOperations, forKey: .diskReadOperations)
        try c.encode(diskWriteOperations, forKey: .diskWriteOperations)
    }
}

/// A VM's current sample and the recent ones, oldest first (`GET /v1/vms/{id}/stats`).
public struct VMStatsHistory: Codable, Sendable, Hashable {
    /// The newest sample.
    public var current: VMStats
    /// Recent samples, oldest first, ending with ``current``.
    public var recent: [VMStats]

    /// Creates a history.
    public init(current: VMStats, recent: [VMStats]) {
        self.current = current
        self.recent = recent
    }
}
