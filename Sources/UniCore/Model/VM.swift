#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How a VM's image is booted.
public enum ImageKind: String, Codable, Sendable {
    /// An ELF/PVH or bzImage kernel, booted with `-kernel` on the `microvm` machine.
    case kernel
    /// A raw disk image with an MBR boot sector, booted by SeaBIOS on the `pc` machine.
    case disk
}

/// The stored image a VM runs: the reference it was created from, the
/// manifest digest that reference named then (a later re-tag does not
/// change the VM), and the files QEMU boots from the image store.
public struct ImageBinding: Codable, Sendable, Hashable {
    /// The reference as resolved (`app:1`).
    public var reference: String
    /// The manifest's digest.
    public var digest: String
    /// The kernel blob, for kernel images.
    public var kernelPath: String?
    /// The initrd blob, when the image has one.
    public var initrdPath: String?
    /// The disk blob, for disk images.
    public var diskPath: String?

    /// A binding.
    public init(reference: String, digest: String, kernelPath: String? = nil, initrdPath: String? = nil, diskPath: String? = nil) {
        self.reference = reference
        self.digest = digest
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.diskPath = diskPath
    }

    /// The file QEMU boots: the kernel, else the disk.
    public var bootPath: String { kernelPath ?? diskPath ?? "" }

    enum CodingKeys: String, CodingKey {
        case reference, digest, kernelPath = "kernel_path", initrdPath = "initrd_path", diskPath = "disk_path"
    }
}

/// The CPU accelerator QEMU runs a VM with.
public enum Accelerator: String, Codable, Sendable, CaseIterable {
    /// Hardware virtualisation through `/dev/kvm`.
    case kvm
    /// QEMU's software emulation.
    case tcg
}

/// Why a VM last stopped.
public enum StopReason: String, Codable, Sendable {
    /// The guest powered off or exited by itself.
    case exited
    /// A graceful stop (ACPI powerdown) succeeded.
    case stopped
    /// A stop timed out and the process was killed.
    case stopTimeout = "stop_timeout"
    /// `kill` (SIGKILL) ended it.
    case killed
    /// QEMU died of a signal nobody sent it, or failed after start.
    case crashed
    /// QEMU never reached the running state.
    case failedToStart = "failed_to_start"
    /// The daemon found it running from an earlier daemon and stopped it.
    case daemonRecovered = "daemon_recovered"
    /// The daemon stopped it while shutting down.
    case daemonShutdown = "daemon_shutdown"
    /// Its health probe found it unhealthy and its restart policy restarts it.
    case unhealthy
    /// The kernel killed QEMU because its cgroup reached its memory ceiling
    /// (`--memory-max`): SIGKILL and an `oom_kill` count in the cgroup.
    case oomKilled = "oom_killed"
}

extension StopReason {
    /// Whether a person (or a daemon on their behalf) ended the run: a
    /// restart policy never undoes these.
    public var isRequested: Bool {
        switch self {
        case .stopped, .stopTimeout, .killed: return true
        case .exited, .crashed, .failedToStart, .daemonRecovered, .daemonShutdown, .unhealthy, .oomKilled: return false
        }
    }
}

extension VM {
    /// Whether the VM is meant to be running: it has a process, or its last
    /// run ended without anyone asking for it (a crash, an OOM kill, a failed
    /// start, an unhealthy stop, a non-zero exit, a daemon that stopped or
    /// recovered it). A VM never started, stopped or killed on request, or
    /// whose guest powered off with status 0 (its work done) is not. Alerts
    /// compare it with whether it runs (`uni_vm_desired_up`, `uni_vm_up`).
    public var shouldRun: Bool {
        if state.hasProcess { return true }
        guard state == .stopped, let reason = stopReason, !reason.isRequested else { return false }
        return !(reason == .exited && exitCode == 0)
    }
}

/// The durable record of one VM: its configuration and what happened to it.
///
/// Serialised as snake_case JSON in `<data-dir>/vms/<id>/state.json` and
/// returned by the API; the schema is documented in `docs/vm-record.md`.
public struct VM: Codable, Sendable, Hashable, Identifiable {
    /// The record format version; bumped when a field changes meaning.
    public static let currentSchemaVersion = 1

    /// The record format version this record was written with.
    public var schemaVersion: Int
    /// The VM's identifier.
    public var id: VMID
    /// The VM's unique name.
    public var name: String
    /// What the user asked for.
    public var config: VMConfig
    /// How the image boots.
    public var imageKind: ImageKind
    /// The stored image behind ``VMConfig/image`` when that is a reference; `nil` for a file path.
    public var image: ImageBinding?

    /// The file QEMU boots: the bound image's kernel or disk, else the path in the config.
    public var bootImagePath: String { image?.bootPath ?? config.image }
    /// The QEMU machine type (`microvm` or `pc`).
    public var machine: String
    /// The accelerator of the last start; `nil` before the first start.
    public var accelerator: Accelerator?
    /// The lifecycle state.
    public var state: VMState
    /// When the VM was created.
    public var createdAt: Date
    /// When the last start reached `running`.
    public var startedAt: Date?
    /// When the last run ended.
    public var finishedAt: Date?
    /// The QEMU process id while it runs.
    public var pid: Int32?
    /// How the last run ended, docker-style: the guest's status (0 after a
    /// clean power-off, N after an `isa-debug-exit` write of N), or 128 + signal.
    public var exitCode: Int32?
    /// QEMU's raw exit status, when it exited rather than being signalled.
    public var qemuExitStatus: Int32?
    /// The signal that ended QEMU, if any.
    public var exitSignal: Int32?
    /// Why the last run ended.
    public var stopReason: StopReason?
    /// The last failure (QEMU's stderr when it failed to start).
    public var lastError: String?
    /// How many times the VM was started.
    public var startCount: Int
    /// Set when a daemon restart found this VM's QEMU orphaned and stopped it.
    public var daemonRecovered: Bool
    /// The health probe's verdict; `none` without a health check.
    public var health: HealthStatus
    /// Failed probes in a row.
    public var healthFailures: Int
    /// When the last probe ended.
    public var lastHealthCheckAt: Date?
    /// What the last failed probe saw.
    public var lastHealthError: String?
    /// How many times the restart policy started the VM again.
    public var restartCount: Int
    /// When the restart policy last started it.
    public var lastRestartAt: Date?
    /// Set when the restart policy used up its restarts in a row (`:N`);
    /// cleared by the next start. A new daemon does not restart it.
    public var restartGaveUp: Bool
    /// The last ``VM/exitsKept`` ends of its process, oldest first.
    public var exits: [ExitRecord]
    /// The cgroup of the last start: mechanism, folders, whether the quota
    /// is enforced and why not; `nil` before the first start.
    public var cgroup: CgroupStatus?
    /// The cgroup's pressure (PSI), read live by an inspect of a running
    /// VM where the kernel offers it; never stored (stores never see it set).
    public var pressure: ResourcePressure?

    /// How many ends ``exits`` keeps.
    public static let exitsKept = 10

    /// Creates a record in the `created` state.
    public init(id: VMID, name: String, config: VMConfig, imageKind: ImageKind, createdAt: Date) {
        self.schemaVersion = VM.currentSchemaVersion
        self.id = id
        self.name = name
        self.config = config
        self.imageKind = imageKind
        self.machine = imageKind == .kernel ? "microvm" : "pc"
        self.accelerator = nil
        self.state = .created
        self.createdAt = createdAt
        self.startCount = 0
        self.daemonRecovered = false
        self.health = .none
        self.healthFailures = 0
        self.restartCount = 0
        self.restartGaveUp = false
        self.exits = []
    }

    /// Appends one end to ``exits``, dropping the oldest beyond ``exitsKept``.
    public mutating func recordExit(_ exit: ExitRecord) {
        exits.append(exit)
        if exits.count > VM.exitsKept { exits.removeFirst(exits.count - VM.exitsKept) }
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", id, name, config, imageKind = "image_kind", image, machine, accelerator, state
        case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at", pid
        case exitCode = "exit_code", qemuExitStatus = "qemu_exit_status", exitSignal = "exit_signal"
        case stopReason = "stop_reason", lastError = "last_error", startCount = "start_count"
        case daemonRecovered = "daemon_recovered"
        case health, healthFailures = "health_failures", lastHealthCheckAt = "last_health_check_at"
        case lastHealthError = "last_health_error", restartCount = "restart_count", lastRestartAt = "last_restart_at", exits
        case restartGaveUp = "restart_gave_up", cgroup, pressure
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion)
        guard schemaVersion <= VM.currentSchemaVersion else {
            throw UniError(.storeFailed, "record schema_version \(schemaVersion) is newer than this build understands (\(VM.currentSchemaVersion))")
        }
        id = try c.decode(VMID.self, forKey: .id)
        name = try c.decode(String.self, forKey: .name)
        config = try c.decode(VMConfig.self, forKey: .config)
        imageKind = try c.decode(ImageKind.self, forKey: .imageKind)
        image = try c.decodeIfPresent(ImageBinding.self, forKey: .image)
        machine = try c.decode(String.self, forKey: .machine)
        accelerator = try c.decodeIfPresent(Accelerator.self, forKey: .accelerator)
        state = try c.decode(VMState.self, forKey: .state)
        createdAt = try c.decode(Date.self, forKey: .createdAt)
        startedAt = try c.decodeIfPresent(Date.self, forKey: .startedAt)
        finishedAt = try c.decodeIfPresent(Date.self, forKey: .finishedAt)
        pid = try c.decodeIfPresent(Int32.self, forKey: .pid)
        exitCode = try c.decodeIfPresent(Int32.self, forKey: .exitCode)
        qemuExitStatus = try c.decodeIfPresent(Int32.self, forKey: .qemuExitStatus)
        exitSignal = try c.decodeIfPresent(Int32.self, forKey: .exitSignal)
        stopReason = try c.decodeIfPresent(StopReason.self, forKey: .stopReason)
        lastError = try c.decodeIfPresent(String.self, forKey: .lastError)
        startCount = try c.decodeIfPresent(Int.self, forKey: .startCount) ?? 0
        daemonRecovered = try c.decodeIfPresent(Bool.self, forKey: .daemonRecovered) ?? false
        health = try c.decodeIfPresent(HealthStatus.self, forKey: .health) ?? .none
        healthFailures = try c.decodeIfPresent(Int.self, forKey: .healthFailures) ?? 0
        lastHealthCheckAt = try c.decodeIfPresent(Date.self, forKey: .lastHealthCheckAt)
        lastHealthError = try c.decodeIfPresent(String.self, forKey: .lastHealthError)
        restartCount = try c.decodeIfPresent(Int.self, forKey: .restartCount) ?? 0
        lastRestartAt = try c.decodeIfPresent(Date.self, forKey: .lastRestartAt)
        restartGaveUp = try c.decodeIfPresent(Bool.self, forKey: .restartGaveUp) ?? false
        exits = try c.decodeIfPresent([ExitRecord].self, forKey: .exits) ?? []
        cgroup = try c.decodeIfPresent(CgroupStatus.self, forKey: .cgroup)
        pressure = try c.decodeIfPresent(ResourcePressure.self, forKey: .pressure)
    }
}
