import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Tracing
import UnixSignals
import UniKit

/// Everything `unid` is configured with; each field has a flag.
public struct DaemonConfiguration: Sendable {
    /// The data dir (`--data-dir`, `UNI_HOME`, default `~/.uni`).
    public var dataDirectory: DataDirectory
    /// `--accel auto|kvm|tcg`.
    public var accelerator: AcceleratorChoice
    /// `--qemu`: the QEMU binary, a name on `PATH` or a path.
    public var qemuBinary: String
    /// `--stop-timeout`: how long a graceful stop waits before killing.
    public var stopTimeout: Duration
    /// The KVM device probed by `--accel auto|kvm`.
    public var kvmDevice: String
    /// `--metrics-addr HOST:PORT` (`:9090` = every address); `nil`: no metrics server.
    public var metricsAddress: String?
    /// How often per-VM numbers are refreshed for `/metrics`.
    public var statsInterval: Duration
    /// `--ui-addr HOST:PORT` (`:8080` = every address); `nil`: no dashboard.
    public var uiAddress: String?
    /// `--vm-store file|sqlite`: where VM records live.
    public var vmStore: VMStoreKind
    /// `--cgroup-root`: where the cgroup filesystem is mounted (docs/architecture.md, "Cgroups").
    public var cgroupRoot: String
    /// `--vms-cpu-weight`: the CPU weight of every VM together (``CgroupControllers/defaultVMsCPUWeight``).
    public var vmsCPUWeight: Int

    /// The backend choices, as ``VMHost`` takes them.
    public var hostOptions: VMHostOptions {
        VMHostOptions(accelerator: accelerator, kvmDevice: kvmDevice, qemuBinary: qemuBinary, vmStore: vmStore,
                      stopTimeout: stopTimeout, cgroupRoot: cgroupRoot, vmsCPUWeight: vmsCPUWeight)
    }

    /// Creates a configuration with the documented defaults.
    public init(
        dataDirectory: DataDirectory = DataDirectory(root: DataDirectory.defaultRoot()),
        accelerator: AcceleratorChoice = .auto,
        qemuBinary: String = "qemu-system-x86_64",
        stopTimeout: Duration = .seconds(10),
        kvmDevice: String = "/dev/kvm",
        metricsAddress: String? = nil,
        statsInterval: Duration = .seconds(5),
        uiAddress: String? = nil,
        vmStore: VMStoreKind = .file,
        cgroupRoot: String = CgroupControllers.defaultRoot,
        vmsCPUWeight: Int = CgroupControllers.defaultVMsCPUWeight
    ) {
        self.cgroupRoot = cgroupRoot
        self.vmsCPUWeight = vmsCPUWeight
        self.uiAddress = uiAddress
        self.vmStore = vmStore
        self.metricsAddress = metricsAddress
        self.statsInterval = statsInterval
        self.dataDirectory = dataDirectory
        self.accelerator = accelerator
        self.qemuBinary = qemuBinary
        self.stopTimeout = stopTimeout
        self.kvmDevice = kvmDevice
    }
}

/// The composed daemon: lock, store, hypervisor, manager and API server,
/// as services in start order (shutdown runs in reverse: the API stops
/// taking requests before the manager stops the VMs).
public struct Daemon: Sendable {
    /// The manager every adapter talks to.
    public let manager: VMManager
    /// The services to run in one `ServiceGroup`, in dependency order.
    public let services: [any Service]
    /// The data dir's lock, held as long as this value lives.
    public let lock: DaemonLock
    /// What `/v1/info` reports.
    public let info: DaemonInfo
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    /// The poller that refreshes per-VM numbers.
    public let poller: VMStatsPoller

    /// Builds the daemon: takes the data dir's lock, opens the VM store
    /// (moving the records of the other store kind over first), loads the
    /// records and recovers VMs a previous daemon left behind.
    /// - Parameters:
    ///   - tracer: where lifecycle spans go (`TraceExport`'s tracer, or none).
    ///   - onReady: called once the API socket accepts connections.
    ///   - onMetricsReady: called with the bound port once the metrics server listens.
    ///   - onUIReady: called with the bound port once the dashboard listens.
    /// - Throws: ``UniError``: a data dir too deep for its sockets or that cannot be written, a second daemon on the data dir, a corrupt, newer or unwritable `vms.db`, a failed import of `state.json` files, QEMU missing, KVM unusable, a bad or busy `--metrics-addr` or `--ui-addr`.
    public static func make(
        configuration: DaemonConfiguration,
        logger: Logger,
        tracer: any Tracer = NoOpTracer(),
        onReady: @escaping @Sendable () async -> Void = {},
        onMetricsReady: @escaping @Sendable (Int) async -> Void = { _ in },
        onUIReady: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws -> Daemon {
        // Before anything is created: a data dir too deep for its sockets is
        // refused without leaving folders behind, not after `unid ready`.
        try configuration.dataDirectory.validateSocketPaths()
        let metricsBind = try ListenAddress.checked(configuration.metricsAddress, flag: "--metrics-addr")
        let uiBind = try ListenAddress.checked(configuration.uiAddress, flag: "--ui-addr")
        let dataDirectory = configuration.dataDirectory
        let factory = PrometheusHelpFactory()
        let telemetry = VMTelemetry(factory: factory)
        // The one way to build a manager with the real backends, shared with embedders.
        let host = try await VMHost.make(dataDirectory: dataDirectory, options: configuration.hostOptions,
                                         telemetry: telemetry, tracer: tracer, logger: logger)
        let manager = host.manager
        let (lock, accelerator, binary, cgroups) = (host.lock, host.accelerator, host.qemuBinary, host.cgroups)
        try await manager.load()
        let poller = VMStatsPoller(manager: manager, telemetry: telemetry, interval: configuration.statsInterval)
        var services: [any Service] = [manager, poller]
        if let metricsBind {
            let router = MetricsRouter.build(registry: factory.registry) { await manager.healthProblem() }
            services.append(Application(
                router: router,
                configuration: ApplicationConfiguration(address: .hostname(metricsBind.host, port: metricsBind.port), serverName: "unid-metrics"),
                onServerRunning: { channel in await onMetricsReady(channel.localAddress?.port ?? metricsBind.port) },
                logger: logger
            ))
        }
        if let uiBind {
            if !uiBind.isLoopback {
                logger.warning("dashboard reachable beyond loopback: it shows every VM's config, console and stats to anyone who can connect; it has no authentication",
                               metadata: ["ui_addr": "\(uiBind.host):\(uiBind.port)"])
            }
            services.append(Application(
                router: try DashboardRouter.build(manager: manager),
                configuration: ApplicationConfiguration(address: .hostname(uiBind.host, port: uiBind.port), serverName: "unid-ui"),
                onServerRunning: { channel in await onUIReady(channel.localAddress?.port ?? uiBind.port) },
                logger: logger
            ))
        }
        let info = DaemonInfo(version: UniVersion.current, accelerator: accelerator, dataDirectory: dataDirectory.root, pid: getpid(),
                              cgroupMode: cgroups.mechanism, cgroupRoot: configuration.cgroupRoot, cgroupReason: cgroups.unavailableReason)
        let api = try APIServer.makeApplication(
            router: APIRouter.build(manager: manager, info: info, tracer: tracer),
            socketPath: dataDirectory.socketPath,
            logger: logger,
            onServerRunning: onReady
        )
        logger.info("unid ready", metadata: ["data_dir": "\(dataDirectory.root)", "accelerator": "\(accelerator)", "qemu": "\(binary)", "version": "\(UniVersion.current)",
                                     "vm_store": "\(configuration.vmStore.rawValue)", "cgroups": "\(cgroups.mechanism.rawValue)",
                                     "cgroup_root": "\(configuration.cgroupRoot)", "vms_cpu_weight": "\(configuration.vmsCPUWeight)"])
        services.append(api)
        return Daemon(manager: manager, services: services, lock: lock, info: info, registry: factory.registry, poller: poller)
    }

    /// Runs the services until one of `signals` (graceful shutdown) or cancellation.
    /// - Parameter first: services started before (and stopped after) the
    ///   daemon's own, such as the span exporter, so it flushes last.
    public func run(logger: Logger, first: [any Service] = [], gracefulShutdownSignals signals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: (first + services).map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: signals,
            logger: logger
        ))
        try await group.run()
        withExtendedLifetime(lock) {}
    }
}

/// A `HOST:PORT` to listen on; `:PORT` means every address.
public struct ListenAddress: Sendable, Hashable {
    /// The host or address to bind.
    public var host: String
    /// The port; 0 picks a free one.
    public var port: Int

    /// Parses `HOST:PORT` or `:PORT`.
    /// - Throws: ``UniError`` naming the flag, the text and the allowed form.
    public init(parsing text: String, flag: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw UniError.invalid("invalid \(flag) '\(text)': expected HOST:PORT or :PORT with a port from 0 to 65535 (for example :9090 or 127.0.0.1:9090)")
        }
        let host = String(text[..<colon])
        self.host = host.isEmpty ? "0.0.0.0" : host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        self.port = port
    }

    /// Parses `text` and checks that its port is free now, so a busy port
    /// fails `unid` at start with the flag's name rather than later in the
    /// service group.
    /// - Returns: `nil` when `text` is `nil` (the server is off).
    /// - Throws: ``UniError`` naming the flag: malformed, or the port is taken.
    public static func checked(_ text: String?, flag: String) throws -> ListenAddress? {
        guard let text else { return nil }
        let address = try ListenAddress(parsing: text, flag: flag)
        guard address.port != 0 else { return address }
        do {
            try HostPortProbe.checkAvailable(PortMapping(hostAddress: address.host == "0.0.0.0" ? nil : address.host,
                                                         hostPort: UInt16(address.port), guestPort: 1))
        } catch let error as UniError {
            throw UniError(error.code, "\(flag) \(text): \(error.message)")
        }
        return address
    }

    /// Whether only this host can connect: `127.x.x.x`, `::1` or `localhost`.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
