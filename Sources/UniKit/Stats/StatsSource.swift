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

/// Reads `/proc/<pid>/stat`: utime + stime (clock ticks) and the resident
/// set (pages), as Incus does for agentless VMs.
///
/// One `read(2)` of one small file into a stack buffer per VM and sample:
/// the RSS in `stat` is the kernel's same counter as `VmRSS` in `status`,
/// which is ten times longer to read and parse (docs/performance.md).
/// Disk and network counters come from the hypervisor
/// (``HypervisorInstance/ioCounters()``). Without `/proc` (not Linux) the
/// source is `fallback`: process numbers are unavailable.
public struct ProcStatsSource: StatsSource {
    /// The proc file system root (injectable for tests).
    public let procRoot: String
    private let ticksPerSecond: Double
    private let pageSize: UInt64
    private let source: VMStats.Source

    /// A source reading `procRoot` (default `/proc`).
    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        ticksPerSecond = ticks > 0 ? Double(ticks) : 100
        let page = sysconf(Int32(_SC_PAGESIZE))
        pageSize = page > 0 ? UInt64(page) : 4096
        source = access(procRoot + "/self/stat", R_OK) == 0 ? .proc : .fallback
    }

    public func sample(_ target: StatsTarget) async -> VMStatsReading {
        let process = target.pid.flatMap { sample(pid: $0) }
        return VMStatsReading(source: source, cpuSeconds: process?.cpuSeconds, memoryRSSBytes: process?.residentBytes,
                              io: await target.instance.ioCounters())
    }

    /// The CPU time and resident memory of `pid`, or `nil` when it cannot
    /// be measured (no such process, a zombie, no `/proc`).
    public func sample(pid: Int32) -> ProcessSample? {
        let fd = open("\(procRoot)/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // The line is at most ~1.2 KiB (52 numbers and a 64-byte name).
        let fields = withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { buffer -> StatFields? in
            var count = 0
            while count < buffer.count {
                let read = Glibc.read(fd, buffer.baseAddress! + count, buffer.count - count)
                if read > 0 {
                    count += read
                } else if read < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            return ProcStatsSource.parse(stat: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        guard let fields else { return nil }
        return ProcessSample(cpuSeconds: Double(fields.cpuTicks) / ticksPerSecond, residentBytes: fields.residentPages * pageSize)
    }

    /// What ``parse(stat:)`` takes from a `stat` line.
    struct StatFields: Hashable {
        /// utime + stime, in clock ticks.
        var cpuTicks: UInt64
        /// The resident set, in pages.
        var residentPages: UInt64
    }

    /// utime + stime (fields 14 and 15) and rss (field 24), counted after
    /// the `)` that ends the command name (which may itself hold spaces and
    /// parentheses). `nil` for a zombie or dead process, whose memory reads
    /// 0 but is not a measurement, and for a line that does not parse.
    static func parse(stat: UnsafeRawBufferPointer) -> StatFields? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // Field 3 (the state) is index 0 from here; utime is index 11.
        var index = -1
        var value: UInt64 = 0
        var inField = false
        var state: UInt8 = 0
        var user: UInt64?, system: UInt64?
        for byte in stat[(close + 1)...] {
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") {
                if inField {
                    switch index {
                    case 11: user = value
                    case 12: system = value
                    case 21:
                        guard let user, let system, state != UInt8(ascii: "Z"), state != UInt8(ascii: "X") else { return nil }
                        return StatFields(cpuTicks: user + system, residentPages: value)
                    default: break
                    }
                }
                inField = false
                continue
            }
            if !inField {
                inField = true
                index += 1
                value = 0
                if index == 0 { state = byte }
            }
            if index == 11 || index == 12 || index == 21 {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
            }
        }
        return nil
    }
}
