import Synchronization
import UniKit

/// A ``StatsSource`` that answers fixed readings: one per VM when set,
/// else the default. Tests change them between samples to script growth.
public final class FixedStatsSource: StatsSource {
    private let state: Mutex<(byVM: [VMID: VMStatsReading], samples: Int)>
    private let fallback: VMStatsReading

    /// A source answering `reading` for every VM without one of its own.
    public init(_ reading: VMStatsReading = VMStatsReading(source: .proc, cpuSeconds: 0, memoryRSSBytes: 64 << 20)) {
        fallback = reading
        state = Mutex(([:], 0))
    }

    /// Answers `reading` for `id` from now on.
    public func set(_ reading: VMStatsReading, for id: VMID) {
        state.withLock { $0.byVM[id] = reading }
    }

    /// How many readings were taken.
    public var sampleCount: Int { state.withLock { $0.samples } }

    public func sample(_ target: StatsTarget) async -> VMStatsReading {
        state.withLock { state in
            state.samples += 1
            return state.byVM[target.id] ?? fallback
        }
    }
}
