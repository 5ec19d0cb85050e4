import Logging
import ServiceLifecycle

/// Every `interval` (5 s by default) samples every running VM through the
/// manager's ``VMStatsSampler`` and refreshes the VM gauges and per-VM
/// series of `/metrics`. Each VM is read off the manager's actor and all
/// at once, so a slow QMP socket holds up neither the others nor the API.
public struct VMStatsPoller: Service {
    private let manager: VMManager
    private let telemetry: VMTelemetry?
    private let interval: Duration

    /// A poller over `manager`'s VMs (`telemetry` `nil`: samples for the API only).
    public init(manager: VMManager, telemetry: VMTelemetry?, interval: Duration = .seconds(5)) {
        self.manager = manager
        self.telemetry = telemetry
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
        let updates = await manager.sampleStats()
        let vms = await manager.list(all: true)
        guard let telemetry else { return }
        telemetry.update(vms: vms)
        let sampled = Set(updates.map(\.stats.vmID))
        for update in updates { telemetry.record(update) }
        for vm in vms where vm.state.hasProcess && !sampled.contains(vm.id) { telemetry.clearSample(for: vm.id) }
        for reading in await manager.pressureReadings() { telemetry.record(reading) }
    }
}
