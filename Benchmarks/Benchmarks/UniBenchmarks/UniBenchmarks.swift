import Benchmark
import Foundation
import Logging
import UniHTTP
import UniKit
import UniKitTesting

/// Telemetry hot paths, each next to a baseline measured in the same run:
/// - `/metrics` render at 1,000 and 10,000 VMs (targets: p50 <= 2 ms and <= 20 ms);
/// - one JSON log line (target: p50 <= 2 us), against Foundation's
///   JSONSerialization of the same fields as the baseline;
/// - stats (issue #14): one VM's sample (target <= 100 us) against reading
///   one `/proc` file; a sampling tick of 100 VMs (its cost every 5 s is
///   unid's CPU share, target <= 1% of a core); `stats()` of 1,000 VMs
///   (fake hypervisor and source; target <= 100 ms).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(3), maxIterations: 100_000)

    for count in [1_000, 10_000] {
        let factory = PrometheusHelpFactory()
        let telemetry = VMTelemetry(factory: factory)
        let now = Date()
        let vms: [VM] = (0..<count).map { index in
            var vm = VM(id: VMID.random(), name: "vm-\(index)", config: VMConfig(image: "/images/app.elf"), imageKind: .kernel, createdAt: now)
            vm.state = index % 2 == 0 ? .running : .stopped
            vm.startCount = 1 + index % 3
            return vm
        }
        telemetry.update(vms: vms)
        let sampler = VMStatsSampler()
        for (index, vm) in vms.enumerated() where vm.state == .running {
            let target = StatsTarget(id: vm.id, name: vm.name, pid: Int32(index + 100), instance: ScriptedInstance(pid: Int32(index + 100)))
            let reading = VMStatsReading(source: .proc, cpuSeconds: Double(index) * 0.01, memoryRSSBytes: UInt64(64 << 20))
            telemetry.record(sampler.record(reading, for: target, at: now, instant: .now))
        }
        Benchmark("/metrics render, \(count) VMs", configuration: .init(scalingFactor: .one)) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(MetricsRouter.render(factory.registry))
            }
        }
    }

    let date = Date()
    let metadata: Logger.Metadata = ["vm_id": "3f2a9c1e8b7d", "name": "web", "from": "starting", "to": "running"]
    Benchmark("JSON log line", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(JSONLogHandler.line(date: date, level: .info, message: "vm state transition", metadata: metadata))
        }
    }
    Benchmark("JSON log line baseline: JSONSerialization", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            let object: [String: String] = ["ts": "2026-11-25T06:11:51.123Z", "level": "INFO", "msg": "vm state transition",
                                            "vm_id": "3f2a9c1e8b7d", "name": "web", "from": "starting", "to": "running"]
            blackHole(try? JSONSerialization.data(withJSONObject: object))
        }
    }

    statsBenchmarks()
}

/// The stats benchmarks: the real `/proc` reader on this process, and the
/// manager with fakes at 1,000 VMs.
@Sendable func statsBenchmarks() {
    let source = ProcStatsSource()
    let pid = getpid()
    let oneTarget = StatsTarget(id: VMID.random(), name: "self", pid: pid, instance: ScriptedInstance(pid: pid))
    let sampler = VMStatsSampler()
    Benchmark("stats: one VM's sample (/proc stat, record)", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            let reading = await source.sample(oneTarget)
            blackHole(sampler.record(reading, for: oneTarget, at: Date(), instant: .now))
        }
    }
    Benchmark("stats baseline: read /proc/self/stat once", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(FileManager.default.contents(atPath: "/proc/self/stat"))
        }
    }
    let hundred = (0..<100).map { StatsTarget(id: VMID.random(), name: "vm-\($0)", pid: pid, instance: ScriptedInstance(pid: pid)) }
    Benchmark("stats: one sampling tick of 100 VMs (real /proc reads)") { benchmark in
        for _ in benchmark.scaledIterations {
            await withTaskGroup(of: Void.self) { group in
                for target in hundred {
                    group.addTask { sampler.record(await source.sample(target), for: target, at: Date(), instant: .now) }
                }
            }
        }
    }
    Benchmark("stats: manager.stats() of 1,000 running VMs (fakes)", configuration: .init(maxDuration: .seconds(5))) { benchmark, manager in
        for _ in benchmark.scaledIterations {
            blackHole(try? await manager.stats())
        }
    } setup: {
        try await StatsFixture.manager(vms: 1_000)
    }
}

/// A manager over fakes with `vms` running VMs, each sampled twice.
enum StatsFixture {
    static func manager(vms count: Int) async throws -> VMManager {
        let directory = try TemporaryDirectory(prefix: "uni-bench")
        let image = directory.path + "/kernel.elf"
        _ = FileManager.default.createFile(atPath: image, contents: Data([0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 60)))
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let manager = VMManager(
            configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: directory.path)),
            backends: VMManagerBackends(store: InMemoryVMStore(), hypervisor: ScriptedHypervisor(), statsSource: FixedStatsSource()),
            logger: logger
        )
        try await manager.load()
        for index in 0..<count { _ = try await manager.run(VMConfig(name: "vm-\(index)", image: image)) }
        await manager.sampleStats()
        await manager.sampleStats()
        return manager
    }
}
