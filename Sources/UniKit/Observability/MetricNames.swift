/// The names the outside world sees: metrics, labels and spans. They are a
/// public contract (dashboards and alerts use them); see `docs/observability.md`.
public enum MetricNames {
    /// Gauge: VMs known to the daemon.
    public static let vmsTotal = "uni_vms_total"
    /// Gauge: VMs with a running QEMU (starting, running, stopping).
    public static let vmsRunning = "uni_vms_running"
    /// Gauge: VMs that are stopped or created.
    public static let vmsStopped = "uni_vms_stopped"
    /// Counter by `kind`: lifecycle operations that succeeded.
    public static let lifecycle = "uni_vm_lifecycle_total"
    /// Counter: image pushes, by `result`.
    public static let registryPush = "uni_registry_push_total"
    /// Counter: image pulls, by `result`.
    public static let registryPull = "uni_registry_pull_total"
    /// Label of the registry counters: `success` or `failure`.
    public static let resultLabel = "result"
    /// Gauge 1 with a `version` label.
    public static let buildInfo = "uni_build_info"
    /// Counter by VM: CPU seconds (user + system) of its QEMU processes.
    public static let vmCPUSeconds = "uni_vm_cpu_seconds_total"
    /// Gauge by VM: resident memory of its QEMU process.
    public static let vmMemoryRSS = "uni_vm_memory_rss_bytes"
    /// Counter by VM: starts after the first one.
    public static let vmRestarts = "uni_vm_restarts_total"
    /// Gauge by VM: 1 while its QEMU runs, 0 otherwise.
    public static let vmUp = "uni_vm_up"
    /// Gauge by VM: 1 while it should run (``VM/shouldRun``), else 0; a VM
    /// down that should run is `uni_vm_desired_up > uni_vm_up`.
    public static let vmDesiredUp = "uni_vm_desired_up"
    /// Gauge by VM: the guest memory QEMU was given (`--memory`).
    public static let vmMemoryConfigured = "uni_vm_memory_configured_bytes"
    /// Gauge by VM: its cgroup's memory ceiling (`--memory-max`); only VMs with one.
    public static let vmMemoryMax = "uni_vm_memory_max_bytes"
    /// Gauge by VM and `status` (starting, healthy, unhealthy): 1 for the
    /// current health, 0 for the others; only VMs with a health check.
    public static let vmHealth = "uni_vm_health"
    /// The label of ``vmHealth`` naming the health status.
    public static let statusLabel = "status"
    /// Histogram: seconds from a start request until the VM runs.
    public static let vmStartDuration = "uni_vm_start_duration_seconds"
    /// Counter by VM: bytes the guest received over its network.
    public static let vmNetworkReceiveBytes = "uni_vm_network_receive_bytes_total"
    /// Counter by VM: bytes the guest sent over its network.
    public static let vmNetworkTransmitBytes = "uni_vm_network_transmit_bytes_total"
    /// Counter by VM: bytes read from its disk.
    public static let vmDiskReadBytes = "uni_vm_disk_read_bytes_total"
    /// Counter by VM: bytes written to its disk.
    public static let vmDiskWrittenBytes = "uni_vm_disk_written_bytes_total"
    /// Counter by VM and `resource` (cpu, memory, io): seconds in which at
    /// least one task of the VM's cgroup waited for the resource (PSI `some`).
    public static let vmPressureWaiting = "uni_vm_pressure_waiting_seconds_total"
    /// Counter by VM and `resource` (cpu, memory, io): seconds in which all
    /// non-idle tasks of the VM's cgroup waited at once (PSI `full`).
    public static let vmPressureStalled = "uni_vm_pressure_stalled_seconds_total"
    /// The label of ``vmPressureWaiting`` and ``vmPressureStalled`` naming the resource.
    public static let resourceLabel = "resource"
    /// Counter: console bytes that could not be written to disk (a full disk).
    public static let consoleDroppedBytes = "uni_console_dropped_bytes_total"
    /// Counter: VM record writes the store refused.
    public static let storeWriteFailures = "uni_store_write_failures_total"

    /// The label of ``lifecycle``.
    public static let kindLabel = "kind"
    /// The VM id label of per-VM series.
    public static let vmIDLabel = "vm_id"
    /// The VM name label of per-VM series.
    public static let nameLabel = "name"

    /// The `kind` values of ``lifecycle``.
    public static let lifecycleKinds = ["create", "start", "stop", "kill", "remove", "update"]

    /// HELP text of every metric, by name.
    public static let help: [String: String] = [
        vmsTotal: "Number of VMs known to unid.",
        vmsRunning: "Number of VMs whose QEMU process runs (starting, running or stopping).",
        vmsStopped: "Number of VMs without a process (created or stopped).",
        lifecycle: "Lifecycle operations that succeeded, by kind (create, start, stop, kill, remove).",
        registryPush: "Images pushed to an OCI registry.",
        registryPull: "Images pulled from an OCI registry.",
        buildInfo: "Always 1; the version label is unid's version.",
        vmCPUSeconds: "CPU time (user + system) used by the VM's QEMU processes, in seconds.",
        vmMemoryRSS: "Resident memory of the VM's QEMU process (VmRSS), in bytes.",
        vmRestarts: "Starts of the VM after its first one.",
        vmUp: "1 while the VM's QEMU process runs, else 0.",
        vmDesiredUp: "1 while the VM should run: it runs, or its last run ended without a stop or kill request and not with a clean exit (status 0); else 0.",
        vmMemoryConfigured: "Guest memory the VM was given (--memory), in bytes; its QEMU process needs some more of its own.",
        vmMemoryMax: "Memory ceiling of the VM's cgroup (--memory-max), guest and QEMU together, in bytes; only VMs with a ceiling.",
        vmHealth: "1 for the VM's current health status (starting, healthy, unhealthy), 0 for the others; VMs with a health check only.",
        vmStartDuration: "Seconds from a start request until QEMU reports the guest running.",
        vmNetworkReceiveBytes: "Bytes the guest received over its network (QEMU filter-dump), summed over its runs.",
        vmNetworkTransmitBytes: "Bytes the guest sent over its network (QEMU filter-dump), summed over its runs.",
        vmDiskReadBytes: "Bytes read from the VM's disk (QMP query-blockstats), summed over its runs.",
        vmDiskWrittenBytes: "Bytes written to the VM's disk (QMP query-blockstats), summed over its runs.",
        vmPressureWaiting: "Seconds in which some task of the VM's cgroup waited for the resource (PSI some), summed over its runs; only where the kernel offers PSI for it.",
        vmPressureStalled: "Seconds in which all non-idle tasks of the VM's cgroup waited for the resource at once (PSI full), summed over its runs; only where the kernel offers PSI for it.",
        consoleDroppedBytes: "Serial console bytes that could not be written to console.log (followers still got them).",
        storeWriteFailures: "VM record writes (saves and deletes) the store refused; unid retries saves.",
    ]

    /// Buckets of ``vmStartDuration``: microvm boots in tens of milliseconds, pc with SeaBIOS in seconds.
    public static let startDurationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
    ]
}

/// Span names of the lifecycle traces.
public enum SpanNames {
    /// The parent of one operation.
    public static let lifecycle = "vm.lifecycle"
    /// The child span of each operation, by kind.
    public static func operation(_ kind: LifecycleOperation) -> String { "vm.\(kind.rawValue)" }

    /// Span attribute: the VM id.
    public static let vmIDAttribute = "vm.id"
    /// Span attribute: the VM name.
    public static let vmNameAttribute = "vm.name"
    /// Span attribute: the image path.
    public static let vmImageAttribute = "vm.image"
    /// Span attribute: the operation kind on `vm.lifecycle`.
    public static let operationAttribute = "vm.operation"
    /// Span attribute set on failures: the ``UniError`` code.
    public static let errorTypeAttribute = "error.type"
}

/// The lifecycle operations that are counted and traced.
public enum LifecycleOperation: String, Sendable, CaseIterable {
    case create, start, stop, kill, remove, update
}
