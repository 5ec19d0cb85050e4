import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Host-side numbers of one VM process, read without any agent in the guest.
public struct ProcessSample: Sendable, Hashable {
    /// CPU time (user + system) since the process started, in seconds.
    public var cpuSeconds: Double
    /// Resident set size, in bytes.
    public var residentBytes: UInt64

    /// Creates a sample.
    public init(cpuSeconds: Double, residentBytes: UInt64) {
        self.cpuSeconds = cpuSeconds
        self.residentBytes = residentBytes
    }
}

/// One running VM, as the stats sampler asks about it.
public struct StatsTarget: Sendable {
    /// The VM.
    public var id: VMID
    /// Its name.
    public var name: String
    /// Its process id, when the backend has one.
    public var pid: Int32?
    /// Its process, for the counters only the hypervisor knows (disk, network).
    public var instance: any HypervisorInstance

    /// Creates a target.
    public init(id: VMID, name: String, pid: Int32?, instance: any HypervisorInstance) {
        self.id = id
        self.name = name
        self.pid = pid
        self.instance = instance
    }
}

/// What a ``StatsSource`` measured of one VM at one moment: cumulative
/// numbers, `nil` where nothing could be measured.
public struct VMStatsReading: Sendable, Hashable {
    /// Where the process numbers came from.
    public var source: VMStats.Source
    /// CPU seconds (user + system) of the process so far.
    public var cpuSeconds: Double?
    /// Resident memory of the process, in bytes.
    public var memoryRSSBytes: UInt64?
    /// Network and disk counters from the hypervisor.
    public var io: VMIOCounters

    /// Creates a reading.
    public init(source: VMStats.Source, cpuSeconds: Double? = nil, memoryRSSBytes: UInt64? = nil, io: VMIOCounters = .unavailable) {
        self.source = source
        self.cpuSeconds = cpuSeconds
        self.memoryRSSBytes = memoryRSSBytes
        self.io = io
    }
}

/// Measures running VMs from the host: the backend of ``VMStatsSampler``.
///
/// The product uses ``ProcStatsSource``; tests and embedders can use
/// `FixedStatsSource` from UniKitTesting.
public protocol StatsSource: Sendable {
    /// The numbers of `target` now. Must not block: it runs for every
    /// running VM every few seconds, off the manager's actor.
    func sample(_ target: StatsTarget) async -> VMStatsReading
}

/// Reads `/proc/<pid>/stat` (utime + stime, in clock ticks) and
/// `/proc/<pid>/status` (`VmRSS`), as Incus does for agentless VMs.
///
/// Disk and network counters come from the hypervisor
/// (``HypervisorInstance/ioCounters()``). Without `/proc` (not Linux) the
/// source is `fallback`: process numbers are unavailable.
public struct ProcStatsSource: StatsSource {
    /// The proc file system root (injectable for tests).
    public let procRoot: String
    private let ticksPerSecond: Double

    /// A source reading `procRoot` (default `/proc`).
    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        ticksPerSecond = ticks > 0 ? Double(ticks) : 100
    }

    public func sample(_ target: StatsTarget) async -> VMStatsReading {
        let process = target.pid.flatMap { sample(pid: $0) }
        let source: VMStats.Source = access(procRoot + "/self", F_OK) == 0 ? .proc : .fallback
        return VMStatsReading(source: source, cpuSeconds: process?.cpuSeconds, memoryRSSBytes: process?.residentBytes,
                              io: await target.instance.ioCounters())
    }

    /// The CPU time and resident memory of `pid`, or `nil` when it cannot
    /// be measured (no such process, no `/proc`).
    public func sample(pid: Int32) -> ProcessSample? {
        guard let stat = read("\(procRoot)/\(pid)/stat"), let status = read("\(procRoot)/\(pid)/status"),
              let cpu = ProcStatsSource.cpuTicks(stat: stat), let rss = ProcStatsSource.residentBytes(status: status) else {
            return nil
        }
        return ProcessSample(cpuSeconds: Double(cpu) / ticksPerSecond, residentBytes: rss)
    }

    /// utime + stime: fields 14 and 15, counted after the `)` that ends the
    /// command name (which may itself hold spaces and parentheses).
    static func cpuTicks(stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is field 14 -> index 11.
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// `VmRSS:   1234 kB` in bytes.
    static func residentBytes(status: String) -> UInt64? {
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kib = UInt64(parts[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }

    private func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }
}
