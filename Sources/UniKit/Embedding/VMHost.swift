import Logging
import Tracing

/// A ``VMManager`` with the real backends of this host, and what was chosen
/// for it: QEMU (``QEMUHypervisor``) with the resolved accelerator, the VM
/// store of ``VMHostOptions/vmStore``, `/proc` stats, socket health probes
/// and the host's cgroup controller.
///
/// This is how `unid` builds its manager, and how a Swift program runs VMs
/// without a daemon:
///
/// ```swift
/// let host = try await VMHost.make(dataDirectory: DataDirectory(root: "/var/lib/myapp/uni"), logger: logger)
/// try await host.manager.load()
/// try await host.manager.withRunning { manager in
///     let vm = try await manager.run(VMConfig(image: "/path/to/kernel.elf"))
///     // ...
/// }
/// ```
///
/// The manager holds the data dir's lock (``DaemonLock``) as long as it
/// lives: one process per data dir, whether `unid` or an embedder.
public struct VMHost: Sendable {
    /// The manager; call ``VMManager/load()`` before using it, then run it
    /// as a `Service` or with ``VMManager/withRunning(_:)``.
    public let manager: VMManager
    /// The data dir the manager keeps its records and runtime files in.
    public let dataDirectory: DataDirectory
    /// The accelerator ``VMHostOptions/accelerator`` resolved to on this host.
    public let accelerator: Accelerator
    /// The absolute path of the QEMU binary that runs the VMs.
    public let qemuBinary: String
    /// The cgroup controller VMs are placed with (``NoCgroupController`` when
    /// the host has none or ``VMHostOptions/cgroupRoot`` is `nil`).
    public let cgroups: any CgroupController
    /// The data dir's lock, also held by ``manager``.
    public let lock: DaemonLock

    /// Builds the manager: creates the data dir, takes its lock, resolves
    /// the accelerator, finds QEMU, opens the VM store (moving the records
    /// of the other store kind over first) and picks the cgroup controller.
    /// Nothing is changed on disk before the checks that can fail pass,
    /// except the data dir and its lock file.
    /// - Parameters:
    ///   - dataDirectory: where records, consoles, images and sockets live;
    ///     short enough for its Unix sockets (`DataDirectory.validateSocketPaths()`).
    ///   - options: accelerator, QEMU binary, store kind, stop timeout, cgroup root.
    ///   - telemetry: where metrics go (`nil`: none).
    ///   - tracer: where lifecycle spans go (default: none).
    ///   - logger: the manager's logger (default: swift-log's, whose
    ///     standard handler prints `info` and above to stderr).
    /// - Returns: the host, whose manager is not loaded yet.
    /// - Throws: `UniError`: a data dir too deep for its sockets or that
    ///   cannot be written, another process holding its lock (`conflict`),
    ///   KVM asked for and unusable or QEMU missing (`unavailable`), a
    ///   corrupt, newer or unwritable `vms.db`, a failed move of records
    ///   between store kinds.
    public static func make(
        dataDirectory: DataDirectory,
        options: VMHostOptions = VMHostOptions(),
        telemetry: VMTelemetry? = nil,
        tracer: any Tracer = NoOpTracer(),
        logger: Logger = Logger(label: "UniKit")
    ) async throws -> VMHost {
        try dataDirectory.validateSocketPaths()
        _ = try CgroupControllers.parseVMsCPUWeight(String(options.vmsCPUWeight))
        try dataDirectory.prepare()
        let lock = try DaemonLock(dataDirectory: dataDirectory)
        let accelerator = try options.accelerator.resolve(kvmDevice: options.kvmDevice)
        let binary = try QEMUHypervisor.locateBinary(options.qemuBinary)
        // After the checks that change nothing: a bad option never migrates records.
        let store = try await options.vmStore.open(dataDirectory: dataDirectory, logger: logger)
        let cgroups: any CgroupController = options.cgroupRoot.map { CgroupControllers.detect(root: $0, vmsCPUWeight: options.vmsCPUWeight) }
            ?? NoCgroupController(reason: "no cgroup root was configured")
        let manager = VMManager(
            configuration: VMManagerConfiguration(dataDirectory: dataDirectory, stopTimeout: options.stopTimeout),
            backends: VMManagerBackends(store: store, hypervisor: QEMUHypervisor(binaryPath: binary, accelerator: accelerator),
                                        telemetry: telemetry, tracer: tracer, cgroups: cgroups),
            logger: logger,
            lock: lock
        )
        return VMHost(manager: manager, dataDirectory: dataDirectory, accelerator: accelerator, qemuBinary: binary, cgroups: cgroups, lock: lock)
    }
}
