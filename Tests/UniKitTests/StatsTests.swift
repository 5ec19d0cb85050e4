import Foundation
import Logging
import Synchronization
import Testing
import UniKit
import UniKitTesting

@Suite("Stats sampler")
struct StatsSamplerTests {
    let id = VMID.random()

    func target(pid: Int32 = 100, instance: ScriptedInstance) -> StatsTarget {
        StatsTarget(id: id, name: "web", pid: pid, instance: instance)
    }

    @Test("CPU % is the CPU time between two samples over the wall time between them; 100 = one core")
    func cpuPercent() {
        let sampler = VMStatsSampler()
        let process = ScriptedInstance(pid: 100)
        let start = ContinuousClock.now
        let first = sampler.record(VMStatsReading(source: .proc, cpuSeconds: 10, memoryRSSBytes: 1 << 20), for: target(instance: process), at: Date(), instant: start)
        #expect(first.stats.cpuPercent == nil)
        #expect(first.increments.cpuSeconds == 10)
        let second = sampler.record(VMStatsReading(source: .proc, cpuSeconds: 13, memoryRSSBytes: 2 << 20), for: target(instance: process), at: Date(), instant: start + .seconds(2))
        #expect(second.stats.cpuPercent == 150)
        #expect(second.increments.cpuSeconds == 3)
        #expect(sampler.latest(id)?.memoryRSSBytes == 2 << 20)
    }

    @Test("a new process starts over: no CPU % across a restart, its counters count from their own zero")
    func restart() {
        let sampler = VMStatsSampler()
        let start = ContinuousClock.now
        let io = VMIOCounters(networkReceivedBytes: 5000, networkTransmittedBytes: 100)
        sampler.record(VMStatsReading(source: .proc, cpuSeconds: 10, io: io), for: target(instance: ScriptedInstance(pid: 100)), at: Date(), instant: start)
        let after = sampler.record(VMStatsReading(source: .proc, cpuSeconds: 1, io: VMIOCounters(networkReceivedBytes: 300)),
                                   for: target(pid: 200, instance: ScriptedInstance(pid: 200)), at: Date(), instant: start + .seconds(1))
        #expect(after.stats.cpuPercent == nil)
        #expect(after.increments.cpuSeconds == 1)
        #expect(after.increments.networkReceivedBytes == 300)
        #expect(after.increments.networkTransmittedBytes == nil)
        #expect(after.stats.networkTransmittedBytes == nil)
    }

    @Test("the ring keeps the newest samples, oldest first; removed VMs are forgotten")
    func ring() {
        let sampler = VMStatsSampler(capacity: 3)
        let process = ScriptedInstance(pid: 100)
        let start = ContinuousClock.now
        for second in 0..<5 {
            sampler.record(VMStatsReading(source: .proc, cpuSeconds: Double(second)), for: target(instance: process), at: Date(), instant: start + .seconds(second))
        }
        #expect(sampler.history(id).map(\.cpuSeconds) == [2, 3, 4])
        #expect(sampler.latest(id)?.cpuSeconds == 4)
        sampler.retain(only: [])
        #expect(sampler.history(id).isEmpty)
        #expect(sampler.latest(id) == nil)
    }

    @Test("unmeasured numbers are null in JSON, never 0 and never missing")
    func json() throws {
        let stats = VMStats(vmID: id, name: "web", sampledAt: Date(timeIntervalSince1970: 0), source: .proc)
        let text = String(decoding: try JSONCoding.makeEncoder().encode(stats), as: UTF8.self)
        #expect(text.contains("\"network_rx_bytes\":null"))
        #expect(text.contains("\"cpu_percent\":null"))
        #expect(try JSONCoding.makeDecoder().decode(VMStats.self, from: Data(text.utf8)) == stats)
    }
}

@Suite("VMManager stats (fixed stats source)")
struct VMManagerStatsTests {
    @Test("a VM newer than one poll interval is sampled twice on demand, so it has a CPU %; a stopped one has no stats")
    func onDemand() async throws {
        let source = FixedStatsSource(VMStatsReading(source: .proc, cpuSeconds: 2, memoryRSSBytes: 32 << 20))
        let directory = try TemporaryDirectory()
        let image = directory.makeFakeKernel()
        let clock = ShortSleepCountingClock()
        let manager = VMManager(
            configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path), statsSecondSampleDelay: .milliseconds(10), clock: clock),
            backends: VMManagerBackends(store: InMemoryVMStore(), hypervisor: ScriptedHypervisor(), statsSource: source),
            logger: Logger(label: "test")
        )
        defer { directory.remove() }
        try await manager.load()
        try await manager.withRunning { manager in
            _ = try await manager.run(VMConfig(name: "web", image: image))
            let history = try await manager.stats("web")
            #expect(source.sampleCount == 2)
            #expect(clock.shortSleeps == 1)
            #expect(history.current.cpuPercent == 0)
            #expect(history.current.memoryRSSBytes == 32 << 20)
            #expect(history.recent.count == 2)
            // Sampled already: answered from the ring, no new reading.
            _ = try await manager.stats("web")
            #expect(source.sampleCount == 2)
            #expect(try await manager.stats().map(\.name) == ["web"])
            // Sampled once by the poller: one more reading now, no waiting.
            _ = try await manager.run(VMConfig(name: "db", image: image))
            await manager.sampleStats()
            let before = source.sampleCount
            #expect(try await manager.stats("db").current.cpuPercent == 0)
            #expect(source.sampleCount == before + 1)
            #expect(clock.shortSleeps == 1)
            _ = try await manager.kill("db")
            _ = try await manager.kill("web")
            let error = await #expect(throws: UniError.self) { try await manager.stats("web") }
            #expect(error?.message == "vm web is not running (state: stopped): it has no stats")
            #expect(try await manager.stats().isEmpty)
        }
    }
}

/// The continuous clock, counting the sleeps shorter than a second (the
/// stats' second-sample delay; the store retry sleeps for seconds).
final class ShortSleepCountingClock: Clock, Sendable {
    private let base = ContinuousClock()
    private let count = Mutex(0)

    var shortSleeps: Int { count.withLock { $0 } }
    var now: ContinuousClock.Instant { base.now }
    var minimumResolution: Duration { base.minimumResolution }

    func sleep(until deadline: ContinuousClock.Instant, tolerance: Duration?) async throws {
        if deadline - base.now < .seconds(1) { count.withLock { $0 += 1 } }
        try await base.sleep(until: deadline, tolerance: tolerance)
    }
}
