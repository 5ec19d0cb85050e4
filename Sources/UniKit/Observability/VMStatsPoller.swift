import Logging
import ServiceLifecycle

/// Every `interval` (5 s by default) reads the host-side numbers of every
/// running VM and refreshes the VM gauges. Reads only `/proc` (never a
/// stopped VM's QMP socket), so a busy or stopped VM cannot stall it.
public struct VMStatsPoller: Service {
    private let manager: VMManager
    private let telemetry: VMTelemetry
    private let source: any StatsSource
    private let interval: Duration

    /// A poller over `manager`'s VMs.
    public init(manager: VMManager, telemetry: VMTelemetry, source: any StatsSource = ProcStatsSource(), interval: Duration = .seconds(5)) {
        self.manager = manager
        self.telemetry = telemetry
        self.source = source
        self.interval = interval
    }

    public func run() async throws {
        // Graceful shutdown cancels the sleep; that is a clean end, not a failure.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await tick()
                try await Task.sleep(for: interval)
            }
        }
    }

    /// One refresh; tests call it directly.
    public func tick() async {
        let vms = await manager.list(all: true)
        telemetry.update(vms: vms)
        for vm in vms where vm.state.hasProcess {
            if let pid = vm.pid, let sample = source.sample(pid: pid) {
                telemetry.record(sample, pid: pid, for: vm.id)
            } else {
                telemetry.clearSample(for: vm.id)
            }
        }
    }
}
