import Foundation
import InMemoryTracing
import Logging
import MetricsTestKit
import Testing
import Tracing
@testable import UniKit
import UniKitTesting

@Suite("Telemetry: metrics, spans and /proc numbers")
struct TelemetryTests {
    func vm(_ name: String, state: VMState, starts: Int = 1) -> VM {
        var vm = VM(id: VMID.random(), name: name, config: VMConfig(image: "/k"), imageKind: .kernel, createdAt: Date())
        vm.state = state
        vm.startCount = starts
        return vm
    }

    @Test("the daemon-wide metrics exist from the start, at 0, with build info 1")
    func initialMetrics() throws {
        let metrics = TestMetrics()
        _ = VMTelemetry(factory: metrics, version: "9.9.9")
        #expect(try metrics.expectGauge(MetricNames.vmsTotal).lastValue == 0)
        #expect(try metrics.expectGauge(MetricNames.buildInfo, [("version", "9.9.9")]).lastValue == 1)
        for result in ["success", "failure"] {
            #expect(try metrics.expectCounter(MetricNames.registryPush, [("result", result)]).totalValue == 0)
            #expect(try metrics.expectCounter(MetricNames.registryPull, [("result", result)]).totalValue == 0)
        }
        for kind in MetricNames.lifecycleKinds {
            #expect(try metrics.expectCounter(MetricNames.lifecycle, [("kind", kind)]).totalValue == 0)
        }
    }

    @Test("counts by state, per-VM series labelled id and name, removed with the VM")
    func perVMSeries() throws {
        let metrics = TestMetrics()
        let telemetry = VMTelemetry(factory: metrics)
        let running = vm("web", state: .running, starts: 3)
        let stopped = vm("old", state: .stopped)
        telemetry.update(vms: [running, stopped])
        #expect(try metrics.expectGauge(MetricNames.vmsTotal).lastValue == 2)
        #expect(try metrics.expectGauge(MetricNames.vmsRunning).lastValue == 1)
        #expect(try metrics.expectGauge(MetricNames.vmsStopped).lastValue == 1)
        let labels = [("vm_id", running.id.rawValue), ("name", "web")]
        #expect(try metrics.expectCounter(MetricNames.vmRestarts, labels).totalValue == 2)
        #expect(try metrics.expectGauge(MetricNames.vmUp, labels).lastValue == 1)

        let sampler = VMStatsSampler()
        let first = StatsTarget(id: running.id, name: "web", pid: 100, instance: ScriptedInstance(pid: 100))
        func sample(_ cpu: Double, _ rss: UInt64, _ target: StatsTarget) {
            telemetry.record(sampler.record(VMStatsReading(source: .proc, cpuSeconds: cpu, memoryRSSBytes: rss), for: target, at: Date(), instant: .now))
        }
        sample(1.5, 4096, first)
        sample(2.0, 8192, first)
        // A new QEMU (restart) starts its own count from 0; the VM's counter keeps growing.
        sample(0.25, 8192, StatsTarget(id: running.id, name: "web", pid: 200, instance: ScriptedInstance(pid: 200)))
        // Network and disk were not measured: no series, never 0.
        #expect(metrics.counters(label: MetricNames.vmNetworkReceiveBytes, dimensions: labels).isEmpty)
        #expect(try metrics.expectGauge(MetricNames.vmMemoryRSS, labels).lastValue == 8192)
        // 1.5 + 0.5 + 0.25 s; swift-metrics' default floating point counter accumulates whole units.
        #expect(metrics.counterTotal(label: MetricNames.vmCPUSeconds, dimensions: labels) == 2)
        // The stopped VM's memory cannot be measured: no series, never 0.
        #expect(metrics.recorders(label: MetricNames.vmMemoryRSS, dimensions: [("vm_id", stopped.id.rawValue), ("name", "old")]).isEmpty)

        telemetry.update(vms: [stopped])
        #expect(try metrics.expectGauge(MetricNames.vmsTotal).lastValue == 1)
        #expect(metrics.counters(label: MetricNames.vmRestarts, dimensions: labels).isEmpty)
        #expect(metrics.recorders(label: MetricNames.vmMemoryRSS, dimensions: labels).isEmpty)
    }

    @Test("desired up tells a crash from a requested stop; configured memory and the ceiling are per-VM gauges")
    func desiredUpAndMemory() throws {
        let metrics = TestMetrics()
        let telemetry = VMTelemetry(factory: metrics)
        func stopped(_ name: String, _ reason: StopReason?, exitCode: Int32? = nil) -> VM {
            var vm = vm(name, state: reason == nil ? .created : .stopped)
            vm.stopReason = reason
            vm.exitCode = exitCode
            return vm
        }
        var running = vm("web", state: .running)
        running.config.memory = .mebibytes(64)
        running.config.quota.memoryMax = .mebibytes(128)
        let vms = [
            running, stopped("new", nil), stopped("crashed", .crashed, exitCode: 137), stopped("oom", .oomKilled, exitCode: 137),
            stopped("failed", .exited, exitCode: 3), stopped("done", .exited, exitCode: 0),
            stopped("stopped", .stopped), stopped("killed", .killed, exitCode: 137), stopped("shutdown", .daemonShutdown),
        ]
        telemetry.update(vms: vms)
        func gauge(_ label: String, _ vm: VM) throws -> Double? {
            try metrics.expectGauge(label, [("vm_id", vm.id.rawValue), ("name", vm.name)]).lastValue
        }
        let desired = try vms.map { try gauge(MetricNames.vmDesiredUp, $0) }
        #expect(desired == [1, 0, 1, 1, 1, 0, 0, 0, 1])
        #expect(try gauge(MetricNames.vmMemoryConfigured, running) == Double(64 << 20))
        #expect(try gauge(MetricNames.vmMemoryConfigured, vms[1]) == Double(VMConfig.defaultMemory.bytes), "the default memory when none was given")
        #expect(try gauge(MetricNames.vmMemoryMax, running) == Double(128 << 20))
        #expect(metrics.recorders(label: MetricNames.vmMemoryMax, dimensions: [("vm_id", vms[1].id.rawValue), ("name", "new")]).isEmpty, "no ceiling, no series")

        // `uni update --memory-max 0` removes the ceiling, and its series.
        running.config.quota.memoryMax = nil
        telemetry.update(vms: [running])
        let labels = [("vm_id", running.id.rawValue), ("name", "web")]
        #expect(metrics.recorders(label: MetricNames.vmMemoryMax, dimensions: labels).isEmpty)
        telemetry.update(vms: [])
        #expect(metrics.recorders(label: MetricNames.vmDesiredUp, dimensions: labels).isEmpty)
        #expect(metrics.recorders(label: MetricNames.vmMemoryConfigured, dimensions: labels).isEmpty)
    }

    @Test("/proc/<pid>/stat parsing: utime + stime and rss after the command name; a zombie is not measured")
    func procParsing() throws {
        func parse(_ line: String) -> ProcStatsSource.StatFields? { Array(line.utf8).withUnsafeBytes { ProcStatsSource.parse(stat: $0) } }
        let fields = "S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 123 4096000 777 18446744073709551615 1 1 0 0 0\n"
        #expect(parse("4242 (qemu (x) y) " + fields) == .init(cpuTicks: 300, residentPages: 777))
        #expect(parse("4242 (qemu) " + fields.replacingOccurrences(of: "S 1", with: "Z 1")) == nil)
        #expect(parse("4242 (qemu) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50") == nil)  // cut short
        #expect(parse("4242 (qemu) S 1 4242 4242 0 -1 4194560 100 0 0 0 2x0 50 0 0 20 0 3 0 123 4096000 777 0\n") == nil)
        #expect(parse("no parenthesis") == nil)
        // Against the kernel's own figures for this process.
        let own = try #require(ProcStatsSource().sample(pid: getpid()))
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        let kib = try #require(UInt64(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        // Both read one counter; the process may grow or shrink a little between the reads.
        #expect(own.residentBytes > 0 && abs(Int64(own.residentBytes) - Int64(kib * 1024)) < 16 << 20, "\(own.residentBytes) vs VmRSS \(kib) kB")
        #expect(own.cpuSeconds > 0)
        #expect(ProcStatsSource().sample(pid: 999_999_999) == nil)
    }

    @Test("each operation is a vm.lifecycle span with one vm.<kind> child and the VM's attributes")
    func spans() async throws {
        let tracer = InMemoryTracer()
        let metrics = TestMetrics()
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let image = dir.makeFakeKernel(named: "k.elf")
        let manager = VMManager(configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: dir.path)), store: InMemoryVMStore(),
                                hypervisor: ScriptedHypervisor(), logger: Logger(label: "test"), telemetry: VMTelemetry(factory: metrics), tracer: tracer)
        try await manager.load()
        try await manager.withRunning { manager in
            let vm = try await manager.run(VMConfig(name: "web", image: image))
            _ = try await manager.stop("web")
            let error = await #expect(throws: UniError.self) { try await manager.kill("web") }
            #expect(error?.code == .invalidState)
            try await manager.remove("web")
            let spans = tracer.finishedSpans
            let children = spans.filter { $0.operationName != SpanNames.lifecycle }
            #expect(children.map(\.operationName) == ["vm.create", "vm.start", "vm.stop", "vm.kill", "vm.remove"])
            for child in children {
                let parent = try #require(spans.first { $0.spanID == child.parentSpanID })
                #expect(parent.operationName == "vm.lifecycle")
                #expect(child.attributes["vm.id"]?.toSpanAttribute() == .string(vm.id.rawValue))
                #expect(child.attributes["vm.name"]?.toSpanAttribute() == .string("web"))
                #expect(child.attributes["vm.image"]?.toSpanAttribute() == .string(image))
            }
            let failed = try #require(children.first { $0.operationName == "vm.kill" })
            #expect(failed.status?.code == .error)
            #expect(failed.attributes["error.type"]?.toSpanAttribute() == .string("invalid_state"))
            #expect(children.first { $0.operationName == "vm.start" }?.status == nil)
            #expect(metrics.counterTotal(label: MetricNames.lifecycle, dimensions: [("kind", "start")]) == 1)
            #expect(metrics.counterTotal(label: MetricNames.lifecycle, dimensions: [("kind", "kill")]) == 0)
            #expect(metrics.counterTotal(label: MetricNames.lifecycle, dimensions: [("kind", "remove")]) == 1)
            #expect(try metrics.expectTimer(MetricNames.vmStartDuration).values.count == 1)
        }
    }

    @Test("the health of the manager: the supervisor must run and the store must write")
    func health() async throws {
        let store = InMemoryVMStore()
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let manager = VMManager(configuration: VMManagerConfiguration(dataDirectory: DataDirectory(root: dir.path)), store: store,
                                hypervisor: ScriptedHypervisor(), logger: Logger(label: "test"))
        try await manager.load()
        #expect(await manager.healthProblem() == "supervisor: not running")
        try await manager.withRunning { manager in
            // run() starts concurrently with this body.
            for _ in 0..<500 where await manager.healthProblem() != nil { try await Task.sleep(for: .milliseconds(2)) }
            #expect(await manager.healthProblem() == nil)
            store.failWrites(with: UniError(.storeFailed, "disk full"))
            _ = try? await manager.create(VMConfig(image: "/bin/true"))
            _ = try? await manager.create(VMConfig(image: dir.path + "/nope"))
            let image = dir.path + "/k.elf"
            _ = FileManager.default.createFile(atPath: image, contents: Data([0x7F, 0x45, 0x4C, 0x46]))
            _ = try? await manager.create(VMConfig(image: image))
            #expect(await manager.healthProblem() == "store: disk full")
            store.failWrites(with: nil)
            _ = try await manager.create(VMConfig(image: image))
            #expect(await manager.healthProblem() == nil)
        }
    }
}
