import CoreMetrics
import Metrics
import Foundation
import Synchronization

/// UniKit's metrics, through swift-metrics with an injected factory (UniKit
/// never bootstraps the global system). `unid` passes a Prometheus-backed
/// factory; tests pass `TestMetrics`.
///
/// Per-VM series are labelled `vm_id` and `name` and disappear when the VM
/// is removed. Numbers that cannot be measured (a stopped VM's memory) are
/// absent, never 0.
public final class VMTelemetry: Sendable {
    private let factory: any MetricsFactory
    private let vmsTotal: Gauge
    private let vmsRunning: Gauge
    private let vmsStopped: Gauge
    private let lifecycle: [LifecycleOperation: Counter]
    private let registryTransfers: [String: Counter]
    private let startDuration: CoreMetrics.Timer
    private let consoleDropped: Counter
    private let storeFailures: Counter
    private let perVM: Mutex<[VMID: PerVM]>

    private final class PerVM: Sendable {
        let name: String
        let dimensions: [(String, String)]
        let cpu: FloatingPointCounter
        let restarts: Counter
        let up: Gauge
        let desiredUp: Gauge
        let configuredMemory: Gauge
        let memory: Mutex<Gauge?>
        /// Present only while the VM has a ceiling (`uni update` may add or remove it).
        let memoryMax: Mutex<Gauge?>
        /// I/O counters, created on their first measured value: a VM
        /// without a network counter has no network series at all.
        let io: Mutex<[String: Counter]>
        let countedRestarts: Mutex<Int>
        /// One gauge per status, created with the first health verdict.
        let health: Mutex<[HealthStatus: Gauge]>
        /// PSI counters by metric and resource, created on their first
        /// reading, with the run and kernel total they last counted.
        let pressure: Mutex<[String: (counter: FloatingPointCounter, run: Int, totalMicroseconds: UInt64)]>

        init(id: VMID, name: String, factory: any MetricsFactory) {
            self.name = name
            dimensions = [(MetricNames.vmIDLabel, id.rawValue), (MetricNames.nameLabel, name)]
            cpu = FloatingPointCounter(label: MetricNames.vmCPUSeconds, dimensions: dimensions, factory: factory)
            restarts = Counter(label: MetricNames.vmRestarts, dimensions: dimensions, factory: factory)
            up = Gauge(label: MetricNames.vmUp, dimensions: dimensions, factory: factory)
            desiredUp = Gauge(label: MetricNames.vmDesiredUp, dimensions: dimensions, factory: factory)
            configuredMemory = Gauge(label: MetricNames.vmMemoryConfigured, dimensions: dimensions, factory: factory)
            memory = Mutex(nil)
            memoryMax = Mutex(nil)
            io = Mutex([:])
            countedRestarts = Mutex(0)
            health = Mutex([:])
            pressure = Mutex([:])
        }
    }

    /// Registers the daemon-wide metrics (all present from the start, at 0).
    public init(factory: any MetricsFactory, version: String = UniVersion.current) {
        self.factory = factory
        vmsTotal = Gauge(label: MetricNames.vmsTotal, factory: factory)
        vmsRunning = Gauge(label: MetricNames.vmsRunning, factory: factory)
        vmsStopped = Gauge(label: MetricNames.vmsStopped, factory: factory)
        for gauge in [vmsTotal, vmsRunning, vmsStopped] { gauge.record(0) }
        var counters: [LifecycleOperation: Counter] = [:]
        for kind in LifecycleOperation.allCases {
            let counter = Counter(label: MetricNames.lifecycle, dimensions: [(MetricNames.kindLabel, kind.rawValue)], factory: factory)
            counter.increment(by: 0)
            counters[kind] = counter
        }
        lifecycle = counters
        var transfers: [String: Counter] = [:]
        for name in [MetricNames.registryPush, MetricNames.registryPull] {
            for result in ["success", "failure"] {
                let counter = Counter(label: name, dimensions: [(MetricNames.resultLabel, result)], factory: factory)
                counter.increment(by: 0)
                transfers[name + "/" + result] = counter
            }
        }
        registryTransfers = transfers
        Gauge(label: MetricNames.buildInfo, dimensions: [("version", version)], factory: factory).record(1)
        startDuration = CoreMetrics.Timer(label: MetricNames.vmStartDuration, factory: factory)
        consoleDropped = Counter(label: MetricNames.consoleDroppedBytes, factory: factory)
        storeFailures = Counter(label: MetricNames.storeWriteFailures, factory: factory)
        consoleDropped.increment(by: 0)
        storeFailures.increment(by: 0)
        perVM = Mutex([:])
    }

    /// Counts one push (or pull, with `push` false), by its outcome.
    public func recordRegistryTransfer(push: Bool, succeeded: Bool) {
        registryTransfers[(push ? MetricNames.registryPush : MetricNames.registryPull) + "/" + (succeeded ? "success" : "failure")]?.increment()
    }

    /// Counts one successful lifecycle operation.
    public func recordOperation(_ kind: LifecycleOperation) {
        lifecycle[kind]?.increment()
    }

    /// Counts console bytes that could not reach the disk.
    public func recordConsoleDropped(bytes: Int) {
        consoleDropped.increment(by: bytes)
    }

    /// Counts one store write that failed.
    public func recordStoreFailure() {
        storeFailures.increment()
    }

    /// Records how long a start took, request to running.
    public func recordStart(duration: Duration) {
        startDuration.recordNanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// Refreshes the VM-count gauges and the per-VM series from `vms`;
    /// series of VMs no longer in `vms` are removed.
    public func update(vms: [VM]) {
        let running = vms.filter { $0.state.hasProcess }.count
        vmsTotal.record(vms.count)
        vmsRunning.record(running)
        vmsStopped.record(vms.count - running)
        let removed: [PerVM] = perVM.withLock { series in
            var current = Set<VMID>()
            for vm in vms {
                current.insert(vm.id)
                let entry: PerVM
                if let existing = series[vm.id], existing.name == vm.name {
                    entry = existing
                } else {
                    entry = PerVM(id: vm.id, name: vm.name, factory: factory)
                    series[vm.id] = entry
                }
                entry.up.record(vm.state.hasProcess ? 1 : 0)
                entry.desiredUp.record(vm.shouldRun ? 1 : 0)
                entry.configuredMemory.record(Double(vm.config.effectiveMemory.bytes))
                recordMemoryMax(vm.config.quota.memoryMax, in: entry)
                let restarts = max(0, vm.startCount - 1)
                entry.countedRestarts.withLock { counted in
                    if restarts > counted { entry.restarts.increment(by: Int64(restarts - counted)) }
                    counted = max(counted, restarts)
                }
                if !vm.state.hasProcess { clearMemory(entry) }
                recordHealth(vm, in: entry)
            }
            let gone = series.keys.filter { !current.contains($0) }
            return gone.compactMap { series.removeValue(forKey: $0) }
        }
        for entry in removed { destroy(entry) }
    }

    /// Records one sample of a running VM from ``VMStatsSampler``, which
    /// owns the deltas: counters grow by its increments.
    public func record(_ update: VMStatsSampler.Update) {
        let id = update.stats.vmID
        guard let entry = perVM.withLock({ $0[id] }) else { return }
        if let cpu = update.increments.cpuSeconds, cpu > 0 { entry.cpu.increment(by: cpu) }
        let io: [(String, UInt64?)] = [
            (MetricNames.vmNetworkReceiveBytes, update.increments.networkReceivedBytes),
            (MetricNames.vmNetworkTransmitBytes, update.increments.networkTransmittedBytes),
            (MetricNames.vmDiskReadBytes, update.increments.diskReadBytes),
            (MetricNames.vmDiskWrittenBytes, update.increments.diskWrittenBytes),
        ]
        entry.io.withLock { counters in
            for (name, increment) in io {
                guard let increment else { continue }
                let counter = counters[name] ?? Counter(label: name, dimensions: entry.dimensions, factory: factory)
                counters[name] = counter
                counter.increment(by: Int64(clamping: increment))
            }
        }
        guard let rss = update.stats.memoryRSSBytes else {
            clearMemory(entry)
            return
        }
        entry.memory.withLock { gauge in
            if gauge == nil {
                gauge = Gauge(label: MetricNames.vmMemoryRSS, dimensions: entry.dimensions, factory: factory)
            }
            gauge?.record(Double(rss))
        }
    }

    /// Counts one PSI reading of a running VM's cgroup: each counter grows
    /// by the kernel total's increase since the last reading of the same
    /// run (a new run's cgroup starts again from 0). A resource or line the
    /// kernel does not report has no series.
    public func record(_ reading: PressureReading) {
        guard let entry = perVM.withLock({ $0[reading.vmID] }) else { return }
        let resources: [(String, PressureStall?)] = [("cpu", reading.pressure.cpu), ("memory", reading.pressure.memory), ("io", reading.pressure.io)]
        entry.pressure.withLock { counters in
            for (resource, stall) in resources {
                guard let stall else { continue }
                for (name, line) in [(MetricNames.vmPressureWaiting, Optional(stall.some)), (MetricNames.vmPressureStalled, stall.full)] {
                    guard let line else { continue }
                    let key = name + "/" + resource
                    let counter = counters[key]?.counter
                        ?? FloatingPointCounter(label: name, dimensions: entry.dimensions + [(MetricNames.resourceLabel, resource)], factory: factory)
                    var increase = line.totalMicroseconds
                    if let last = counters[key], last.run == reading.run {
                        increase = line.totalMicroseconds >= last.totalMicroseconds ? line.totalMicroseconds - last.totalMicroseconds : 0
                    }
                    if increase > 0 { counter.increment(by: Double(increase) / 1_000_000) }
                    counters[key] = (counter, reading.run, line.totalMicroseconds)
                }
            }
        }
    }

    /// Drops the memory series of a VM whose process cannot be measured.
    public func clearSample(for id: VMID) {
        guard let entry = perVM.withLock({ $0[id] }) else { return }
        clearMemory(entry)
    }

    private func clearMemory(_ entry: PerVM) {
        entry.memory.withLock { gauge in
            gauge?.destroy()
            gauge = nil
        }
    }

    private func recordMemoryMax(_ ceiling: ByteSize?, in entry: PerVM) {
        entry.memoryMax.withLock { gauge in
            guard let ceiling else {
                gauge?.destroy()
                gauge = nil
                return
            }
            if gauge == nil { gauge = Gauge(label: MetricNames.vmMemoryMax, dimensions: entry.dimensions, factory: factory) }
            gauge?.record(Double(ceiling.bytes))
        }
    }

    /// One-hot `uni_vm_health` for a VM with a health check; none for the others.
    private func recordHealth(_ vm: VM, in entry: PerVM) {
        entry.health.withLock { gauges in
            guard vm.config.healthCheck != nil else {
                gauges.values.forEach { $0.destroy() }
                gauges.removeAll()
                return
            }
            for status in [HealthStatus.starting, .healthy, .unhealthy] {
                let gauge = gauges[status] ?? Gauge(label: MetricNames.vmHealth, dimensions: entry.dimensions + [(MetricNames.statusLabel, status.rawValue)], factory: factory)
                gauges[status] = gauge
                gauge.record(vm.health == status ? 1 : 0)
            }
        }
    }

    private func destroy(_ entry: PerVM) {
        entry.health.withLock { gauges in
            gauges.values.forEach { $0.destroy() }
            gauges.removeAll()
        }
        entry.io.withLock { counters in
            for counter in counters.values { counter.destroy() }
            counters.removeAll()
        }
        entry.pressure.withLock { counters in
            for value in counters.values { value.counter.destroy() }
            counters.removeAll()
        }
        entry.cpu.destroy()
        entry.restarts.destroy()
        entry.up.destroy()
        entry.desiredUp.destroy()
        entry.configuredMemory.destroy()
        recordMemoryMax(nil, in: entry)
        clearMemory(entry)
    }
}
