/// How ``VMHost/make(dataDirectory:options:telemetry:tracer:logger:)`` builds
/// the real backends: the same choices `unid` takes as flags, with the same
/// defaults.
public struct VMHostOptions: Sendable {
    /// The accelerator (`unid --accel`): ``AcceleratorChoice/auto`` uses KVM
    /// when ``kvmDevice`` opens read-write, else TCG.
    public var accelerator: AcceleratorChoice
    /// The KVM device probed by ``AcceleratorChoice/auto`` and ``AcceleratorChoice/kvm``.
    public var kvmDevice: String
    /// The QEMU binary (`unid --qemu`): a name looked up on `PATH`, or a path.
    public var qemuBinary: String
    /// Where VM records live (`unid --vm-store`); the other kind's records
    /// in the data dir are moved over when the store opens (``VMStoreKind/open(dataDirectory:logger:)``).
    public var vmStore: VMStoreKind
    /// How long a graceful stop waits for the guest to power off before
    /// QEMU is killed (`unid --stop-timeout`).
    public var stopTimeout: Duration
    /// Where the cgroup filesystem is mounted (`unid --cgroup-root`), read by
    /// ``CgroupControllers/detect(root:vmsCPUWeight:)``; `nil`: no cgroups, so quotas are
    /// recorded but not enforced.
    public var cgroupRoot: String?
    /// The CPU weight of every VM together against the host's other
    /// processes (`unid --vms-cpu-weight`, 1-10000): written to the parent
    /// of the VMs' cgroups. See ``CgroupControllers/defaultVMsCPUWeight``.
    public var vmsCPUWeight: Int

    /// Options with `unid`'s defaults: accelerator `auto`, `qemu-system-x86_64`
    /// from `PATH`, the file store, a 10 s stop timeout, cgroups under `/sys/fs/cgroup`
    /// with every VM together at CPU weight 10.
    public init(
        accelerator: AcceleratorChoice = .auto,
        kvmDevice: String = "/dev/kvm",
        qemuBinary: String = "qemu-system-x86_64",
        vmStore: VMStoreKind = .file,
        stopTimeout: Duration = .seconds(10),
        cgroupRoot: String? = CgroupControllers.defaultRoot,
        vmsCPUWeight: Int = CgroupControllers.defaultVMsCPUWeight
    ) {
        self.vmsCPUWeight = vmsCPUWeight
        self.accelerator = accelerator
        self.kvmDevice = kvmDevice
        self.qemuBinary = qemuBinary
        self.vmStore = vmStore
        self.stopTimeout = stopTimeout
        self.cgroupRoot = cgroupRoot
    }
}
