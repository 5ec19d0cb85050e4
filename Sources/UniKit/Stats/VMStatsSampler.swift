import Foundation
import Synchronization

/// The one place that turns readings into per-VM numbers: it owns the
/// deltas (CPU % between two samples, counter increments for `/metrics`)
/// and a ring buffer of recent samples per VM. The stats poller,
/// `/metrics`, the API and the dashboard all read it.
public final class VMStatsSampler: Sendable {
    /// How many samples are kept per VM (120 at the 5 s poll interval: 10 minutes).
    public let capacity: Int

    /// What one recorded reading changed.
    public struct Update: Sendable, Hashable {
        /// The sample as callers see it.
        public var stats: VMStats
        /// Growth of each cumulative counter since the previous sample of the
        /// same process (the whole value for a new process); `nil` when unmeasured.
        public var increments: Increments
    }

    /// Growth of the cumulative counters between two samples.
    public struct Increments: Sendable, Hashable {
        /// CPU seconds.
        public var cpuSeconds: Double?
        /// Network bytes received by the guest.
        public var networkReceivedBytes: UInt64?
        /// Network bytes sent by the guest.
        public var networkTransmittedBytes: UInt64?
        /// Disk bytes read.
        public var diskReadBytes: UInt64?
        /// Disk bytes written.
        public var diskWrittenBytes: UInt64?
    }

    private struct Series {
        var samples: [VMStats] = []
        /// Where the ring's next sample goes once it is full.
        var next = 0
        var last: (pid: Int32?, instance: ObjectIdentifier, at: ContinuousClock.Instant, stats: VMStats)?
    }
    private let series = Mutex<[VMID: Series]>([:])

    /// A sampler keeping `capacity` samples per VM.
    public init(capacity: Int = 120) {
        self.capacity = max(2, capacity)
    }

    /// Records a reading of `target` taken at `date` (wall clock, shown) and
    /// `instant` (monotonic, for the deltas).
    /// - Returns: the sample and what it added to each counter.
    @discardableResult
    public func record(_ reading: VMStatsReading, for target: StatsTarget, at date: Date, instant: ContinuousClock.Instant) -> Update {
        var stats = VMStats(vmID: target.id, name: target.name, sampledAt: date, source: reading.source)
        stats.cpuSeconds = reading.cpuSeconds
        stats.memoryRSSBytes = reading.memoryRSSBytes
        stats.networkReceivedBytes = reading.io.networkReceivedBytes
        stats.networkTransmittedBytes = reading.io.networkTransmittedBytes
        stats.diskReadBytes = reading.io.diskReadBytes
        stats.diskWrittenBytes = reading.io.diskWrittenBytes
        stats.diskReadOperations = reading.io.diskReadOperations
        stats.diskWriteOperations = reading.io.diskWriteOperations
        let process = ObjectIdentifier(target.instance)
        return series.withLock { all in
            var entry = all[target.id] ?? Series()
            // Counters restart with each process: deltas only within one.
            let previous = entry.last.flatMap { $0.instance == process && $0.pid == target.pid ? $0 : nil }
            if let previous, let now = stats.cpuSeconds, let before = previous.stats.cpuSeconds {
                let wall = (instant - previous.at) / .seconds(1)
                if wall > 0 { stats.cpuPercent = max(0, now - before) / wall * 100 }
            }
            func growth<Value: Numeric & Comparable>(_ key: KeyPath<VMStats, Value?>) -> Value? {
                guard let now = stats[keyPath: key] else { return nil }
                guard let before = previous?.stats[keyPath: key] else { return now }
                return now >= before ? now - before : now
            }
            let increments = Increments(
                cpuSeconds: growth(\.cpuSeconds),
                networkReceivedBytes: growth(\.networkReceivedBytes),
                networkTransmittedBytes: growth(\.networkTransmittedBytes),
                diskReadBytes: growth(\.diskReadBytes),
                diskWrittenBytes: growth(\.diskWrittenBytes)
            )
            entry.last = (target.pid, process, instant, stats)
            if entry.samples.count < capacity {
                entry.samples.append(stats)
            } else {
                entry.samples[entry.next] = stats
                entry.next = (entry.next + 1) % capacity
            }
            all[target.id] = entry
            return Update(stats: stats, increments: increments)
        }
    }

    /// The newest sample of `id`.
    public func latest(_ id: VMID) -> VMStats? {
        series.withLock { $0[id]?.last?.stats }
    }

    /// The recent samples of `id`, oldest first.
    public func history(_ id: VMID) -> [VMStats] {
        series.withLock { all in
            guard let entry = all[id] else { return [] }
            return Array(entry.samples[entry.next...] + entry.samples[..<entry.next])
        }
    }

    /// Forgets every VM not in `ids` (removed VMs).
    public func retain(only ids: Set<VMID>) {
        series.withLock { all in all = all.filter { ids.contains($0.key) } }
    }
}
