import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
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

    /// Creates a configuration with the documented defaults.
    public init(
        dataDirectory: DataDirectory = DataDirectory(root: DataDirectory.defaultRoot()),
        accelerator: AcceleratorChoice = .auto,
        qemuBinary: String = "qemu-system-x86_64",
        stopTimeout: Duration = .seconds(10),
        kvmDevice: String = "/dev/kvm"
    ) {
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

    /// Builds the daemon: takes the data dir's lock, loads the records and
    /// recovers VMs a previous daemon left behind.
    /// - Parameter onReady: called once the API socket accepts connections.
    /// - Throws: ``UniError``: a second daemon on the data dir, QEMU missing, KVM unusable.
    public static func make(configuration: DaemonConfiguration, logger: Logger, onReady: @escaping @Sendable () async -> Void = {}) async throws -> Daemon {
        let dataDirectory = configuration.dataDirectory
        try dataDirectory.prepare()
        let lock = try DaemonLock(dataDirectory: dataDirectory)
        let accelerator = try configuration.accelerator.resolve(kvmDevice: configuration.kvmDevice)
        let binary = try QEMUHypervisor.locateBinary(configuration.qemuBinary)
        let hypervisor = QEMUHypervisor(binaryPath: binary, accelerator: accelerator)
        let manager = VMManager(
            configuration: VMManagerConfiguration(dataDirectory: dataDirectory, stopTimeout: configuration.stopTimeout),
            store: FileVMStore(dataDirectory: dataDirectory),
            hypervisor: hypervisor,
            logger: logger
        )
        try await manager.load()
        let info = DaemonInfo(version: UniVersion.current, accelerator: accelerator, dataDirectory: dataDirectory.root, pid: getpid())
        let api = try APIServer.makeApplication(
            router: APIRouter.build(manager: manager, info: info),
            socketPath: dataDirectory.socketPath,
            logger: logger,
            onServerRunning: onReady
        )
        logger.info("unid ready", metadata: ["data_dir": "\(dataDirectory.root)", "accelerator": "\(accelerator)", "qemu": "\(binary)", "version": "\(UniVersion.current)"])
        return Daemon(manager: manager, services: [manager, api], lock: lock, info: info)
    }

    /// Runs the services until one of `signals` (graceful shutdown) or cancellation.
    public func run(logger: Logger, gracefulShutdownSignals signals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: signals,
            logger: logger
        ))
        try await group.run()
        withExtendedLifetime(lock) {}
    }
}
