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
    /// ``CgroupControllers/detect(root:)``; `nil`: no cgroups, so quotas are
    /// recorded but not enforced.
    public var cgroupRoot: String?

    /// Options with `unid`'s defaults: accelerator `auto`, `qemu-system-x86_64`
    /// from `PATH`, the file store, a 10 s stop timeout, cgroups under `/sys/fs/cgroup`.
    public init(
        accelerator: AcceleratorChoice = .auto,
        kvmDevice: String = "/dev/kvm",
        qemuBinary: String = "qemu-system-x86_64",
        vmStore: VMStoreKind = .file,
        stopTimeout: Duration = .seconds(10),
        cgroupRoot: String? = CgroupControllers.defaultRoot
    ) {
        self.accelerator = accelerator
        self.kvmDevice = kvmDevice
        self.qemuBinary = qemuBinary
        self.vmStore = vmStore
        self.stopTimeout = stopTimeout
        self.cgroupRoot = cgroupRoot
    }
}
