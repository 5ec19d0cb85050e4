/// Runs VMs as processes. `VMManager` drives it; it never touches the store.
///
/// The product uses ``QEMUHypervisor``; tests and embedders can use
/// `ScriptedHypervisor` from UniKitTesting.
public protocol Hypervisor: Sendable {
    /// The accelerator new VMs run with.
    var accelerator: Accelerator { get }

    /// Launches `request.vm` and returns once the guest is running.
    /// - Throws: ``UniError`` with code `hypervisorFailed` (QEMU's stderr in the
    ///   message) or `conflict` (a host port in use); nothing is left running.
    func launch(_ request: LaunchRequest) async throws -> any HypervisorInstance

    /// Ends the process a dead daemon left running for `vm`, if it still
    /// exists: called once per VM whose record says it had a process
    /// (`starting`, `running`, `stopping`) when a manager loads.
    /// Only the backend knows how to tell its own process from an unrelated
    /// one that reuses the pid. The default finds none.
    /// - Parameters:
    ///   - vm: the record as the dead daemon left it (``VM/pid`` may be `nil`).
    ///   - directory: the VM's runtime folder.
    /// - Returns: whether a process was found and ended.
    func stopOrphan(of vm: VM, directory: String) async -> Bool
}

extension Hypervisor {
    /// A backend without processes of its own leaves no orphans.
    public func stopOrphan(of vm: VM, directory: String) async -> Bool { false }
}

/// Everything a backend needs to launch one VM.
public struct LaunchRequest: Sendable {
    /// The record being started (its config, image kind and machine).
    public var vm: VM
    /// The VM's runtime folder (QMP socket, env file, pid file).
    public var directory: String
    /// Where the serial console goes.
    public var console: ConsoleLog
    /// When the backend may check that the guest runs.
    public var confirmation: StartConfirmation
    /// The cgroup the process must join before the guest runs (`nil`: none).
    /// A backend with a process joins it between fork and exec.
    public var cgroup: CgroupPlacement?

    /// Creates a request.
    public init(vm: VM, directory: String, console: ConsoleLog, confirmation: StartConfirmation = .immediate, cgroup: CgroupPlacement? = nil) {
        self.vm = vm
        self.directory = directory
        self.console = console
        self.confirmation = confirmation
        self.cgroup = cgroup
    }
}

/// When a backend checks that a launched guest runs.
public enum StartConfirmation: Sendable, Hashable {
    /// As soon as it can (QEMU: polls QMP from the spawn on).
    case immediate
    /// Once the guest has printed a whole console line, has ended, or
    /// `grace` has passed. For attached runs: QEMU serves QMP under its big
    /// lock, which the booting guest's serial output needs too, so an early
    /// handshake delays the first line someone is watching (~1 ms here,
    /// docs/performance.md); the VM stays `starting` a little longer instead.
    case afterFirstLine(grace: Duration)
}

/// One running VM process.
public protocol HypervisorInstance: AnyObject, Sendable {
    /// The process id, when the backend has one.
    var pid: Int32? { get }
    /// Asks the guest to power off (ACPI power button); returns at once.
    func requestPowerdown() async throws
    /// Ends the process now (SIGKILL); returns at once.
    func forceStop()
    /// Waits until the process has ended; any number of callers may wait.
    func waitForExit() async -> VMExit
    /// The VM's network and disk counters now; a counter the backend cannot
    /// measure is `nil`. Called by the stats sampler every few seconds: it
    /// must not block, and never waits on the manager.
    func ioCounters() async -> VMIOCounters
    /// Changes the boot disk's I/O limits while the VM runs (`uni update`).
    /// - Throws: ``UniError``: `invalidArgument` when the VM has no boot
    ///   disk, `hypervisorFailed` when the backend refuses, `unavailable`
    ///   when it cannot throttle at all.
    func setDiskThrottle(_ throttle: DiskThrottle) async throws
}

extension HypervisorInstance {
    /// A backend without I/O counters measures none.
    public func ioCounters() async -> VMIOCounters { .unavailable }

    /// A backend without disk throttling refuses to change it.
    public func setDiskThrottle(_ throttle: DiskThrottle) async throws {
        throw UniError(.unavailable, "this hypervisor cannot change disk limits of a running VM")
    }
}

/// How a VM process ended.
public struct VMExit: Sendable, Hashable {
    /// The docker-style exit code: the guest's status, or 128 + signal.
    public var exitCode: Int32
    /// The process's own exit status, when it exited.
    public var processStatus: Int32?
    /// The signal that ended it, when one did.
    public var signal: Int32?

    /// Creates an exit description.
    public init(exitCode: Int32, processStatus: Int32? = nil, signal: Int32? = nil) {
        self.exitCode = exitCode
        self.processStatus = processStatus
        self.signal = signal
    }
}
