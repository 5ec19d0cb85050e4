import Foundation

extension VMManager {
    /// Samples every running VM once, off the actor and all at once, and
    /// records the readings in ``sampler``; the stats poller calls it.
    /// - Returns: what each sample added, for `/metrics`.
    @discardableResult
    public func sampleStats() async -> [VMStatsSampler.Update] {
        let targets = statsTargets()
        sampler.retain(only: Set(table.all.map(\.id)))
        return await VMManager.sample(targets, source: backends.statsSource, sampler: sampler, now: configuration.now)
    }

    /// The recent stats of a running VM. When its newest sample has no CPU %
    /// (it is newer than one poll interval) a reading is taken now; a VM
    /// never sampled gets a second one after
    /// ``VMManagerConfiguration/statsSecondSampleDelay``, so the answer has a
    /// CPU % without waiting a whole interval.
    /// - Throws: ``UniError``: `notFound`; `invalidState` for a VM without a process.
    public func stats(_ reference: String) async throws -> VMStatsHistory {
        let id = try table.resolve(reference)
        guard let vm = table[id] else { throw UniError(.notFound, "no such vm: \(reference)") }
        guard let target = statsTargets().first(where: { $0.id == id }) else {
            throw UniError(.invalidState, "vm \(vm.name) is not running (state: \(vm.state)): it has no stats")
        }
        try await ensureCPUPercent([target])
        guard let current = sampler.latest(id) else { throw UniError(.internalError, "no stats sample of vm \(vm.name)") }
        return VMStatsHistory(current: current, recent: sampler.history(id))
    }

    /// The current stats of every running VM, newest VM first.
    public func stats() async throws -> [VMStats] {
        let targets = statsTargets()
        try await ensureCPUPercent(targets)
        let order = list().map(\.id)
        return order.compactMap { sampler.latest($0) }
    }

    /// Samples the targets whose newest sample has no CPU % yet. One
    /// sampled before needs one more reading now; one never sampled gets a
    /// first reading and, after a short delay, its second.
    private func ensureCPUPercent(_ targets: [StatsTarget]) async throws {
        let missing = targets.filter { sampler.latest($0.id)?.cpuPercent == nil }
        guard !missing.isEmpty else { return }
        let source = backends.statsSource
        let unsampled = missing.filter { sampler.latest($0.id) == nil }
        if !unsampled.isEmpty {
            _ = await VMManager.sample(unsampled, source: source, sampler: sampler, now: configuration.now)
            try await configuration.clock.sleep(for: configuration.statsSecondSampleDelay)
        }
        // Only VMs still running are sampled again.
        let running = Set(statsTargets().map(\.id))
        _ = await VMManager.sample(missing.filter { running.contains($0.id) }, source: source, sampler: sampler, now: configuration.now)
    }

    /// The running VMs with their processes.
    func statsTargets() -> [StatsTarget] {
        runtimes.compactMap { id, runtime in
            guard let vm = table[id] else { return nil }
            return StatsTarget(id: id, name: vm.name, pid: runtime.instance.pid, instance: runtime.instance)
        }
    }

    /// Reads every target concurrently and records the readings.
    nonisolated static func sample(_ targets: [StatsTarget], source: any StatsSource, sampler: VMStatsSampler,
                                   now: @escaping @Sendable () -> Date) async -> [VMStatsSampler.Update] {
        await withTaskGroup(of: VMStatsSampler.Update.self) { group in
            for target in targets {
                group.addTask {
                    let reading = await source.sample(target)
                    return sampler.record(reading, for: target, at: now(), instant: .now)
                }
            }
            var updates: [VMStatsSampler.Update] = []
            for await update in group { updates.append(update) }
            return updates
        }
    }
}
