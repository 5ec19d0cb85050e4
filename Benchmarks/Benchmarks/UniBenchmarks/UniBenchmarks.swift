import Benchmark
import Foundation
import Logging
import UniHTTP
import UniKit
import UniKitTesting

/// Telemetry hot paths, each next to a baseline measured in the same run:
/// - `/metrics` render at 1,000 and 10,000 VMs (targets: p50 <= 2 ms and <= 20 ms);
/// - one JSON log line (target: p50 <= 2 us), against Foundation's
///   JSONSerialization of the same fields as the baseline.
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
}
