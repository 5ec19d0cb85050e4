#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a user asks for when creating a VM: the image and its resources.
///
/// This is the body of the API's create request and part of every stored
/// ``VM`` record. ``validated()`` checks every field and names the bad value.
public struct VMConfig: Codable, Sendable, Hashable {
    /// The VM's name; generated (`vm-<id prefix>`) when `nil`.
    public var name: String?
    /// Absolute path of a kernel image (booted with `-kernel`) or raw disk
    /// image, or an image reference (`app:1`, `registry.example/team/app:1`)
    /// of the local image store.
    public var image: String
    /// Guest memory; whole MiB, at least ``minimumMemory``. `nil`: the
    /// image's default, else ``defaultMemory`` (a created VM's record always has it).
    public var memory: ByteSize?
    /// Virtual CPUs, 1 to ``maximumCPUs``. `nil`: the image's default, else 1.
    public var cpus: Int?
    /// Host ports forwarded into the guest.
    public var ports: [PortMapping]
    /// Variables handed to the guest through fw_cfg (`opt/uni/env`).
    public var environment: [String: String]
    /// The kernel command line (kernel images only).
    public var kernelCommandLine: String?
    /// Remove the VM once it stops (`uni run --rm`).
    public var autoRemove: Bool
    /// What brings the VM back when it stops (`--restart`).
    public var restartPolicy: RestartPolicy
    /// The probe of a guest service (`--health-check`); `nil`: none.
    public var healthCheck: HealthCheck?
    /// The VM's CPU weight and memory ceiling, held by its cgroup (`--cpu-shares`, `--memory-max`).
    public var quota: ResourceQuota
    /// Limits on the boot disk's I/O (`--disk-iops`, `--disk-bps`); disk images only.
    public var diskThrottle: DiskThrottle
    /// What the guest's network can reach (`--network`).
    public var network: NetworkMode

    /// The default guest memory, 256 MiB.
    public static let defaultMemory = ByteSize.mebibytes(256)
    /// The smallest guest memory accepted, 16 MiB.
    public static let minimumMemory = ByteSize.mebibytes(16)
    /// The largest vCPU count accepted.
    public static let maximumCPUs = 64
    /// The vCPUs when neither the request nor the image says.
    public static let defaultCPUs = 1

    /// The guest memory QEMU gets: ``memory``, else the default.
    public var effectiveMemory: ByteSize { memory ?? VMConfig.defaultMemory }
    /// The vCPUs QEMU gets: ``cpus``, else the default.
    public var effectiveCPUs: Int { cpus ?? VMConfig.defaultCPUs }

    /// The image as a reference to the image store, or `nil` when it is a file path.
    public var imageReference: ImageReference? {
        ImageReference.looksLikePath(image) ? nil : try? ImageReference.parse(image)
    }

    /// Creates a configuration with the documented defaults.
    public init(
        name: String? = nil,
        image: String,
        memory: ByteSize? = nil,
        cpus: Int? = nil,
        ports: [PortMapping] = [],
        environment: [String: String] = [:],
        kernelCommandLine: String? = nil,
        autoRemove: Bool = false,
        restartPolicy: RestartPolicy = .never,
        healthCheck: HealthCheck? = nil,
        quota: ResourceQuota = ResourceQuota(),
        diskThrottle: DiskThrottle = .unlimited,
        network: NetworkMode = .user
    ) {
        self.name = name
        self.image = image
        self.memory = memory
        self.cpus = cpus
        self.ports = ports
        self.environment = environment
        self.kernelCommandLine = kernelCommandLine
        self.autoRemove = autoRemove
        self.restartPolicy = restartPolicy
        self.healthCheck = healthCheck
        self.quota = quota
        self.diskThrottle = diskThrottle
        self.network = network
    }

    /// The longest kernel command line accepted, in bytes: x86 Linux's
    /// `COMMAND_LINE_SIZE` is 2048 including the final NUL, and QEMU refuses
    /// or the kernel cuts anything longer.
    public static let maximumKernelCommandLineBytes = 2047

    /// Checks every field; the one check of every value that reaches a QEMU
    /// argument, shared by the CLI and the API.
    /// - Returns: the configuration with its image path normalized (`.` and `..` dropped).
    /// - Throws: ``UniError`` with code `invalidArgument`, naming the bad value and what is allowed.
    public func validated() throws -> VMConfig {
        var config = self
        if let name { try VMConfig.validate(name: name) }
        config.image = try VMConfig.validate(image: image)
        if let memory {
            guard memory >= VMConfig.minimumMemory, memory.bytes % (1 << 20) == 0 else {
                throw UniError.invalid("invalid memory '\(memory)': must be a whole number of MiB and at least \(VMConfig.minimumMemory) (for example 64M or 1G)")
            }
        }
        if let cpus {
            guard (1...VMConfig.maximumCPUs).contains(cpus) else {
                throw UniError.invalid("invalid cpus '\(cpus)': must be a whole number from 1 to \(VMConfig.maximumCPUs)")
            }
        }
        var seen = Set<String>()
        for port in ports {
            try port.validate()
            let key = "\(port.hostPort)/\(port.transportProtocol.rawValue)"
            guard seen.insert(key).inserted else {
                throw UniError.invalid("invalid port mapping '\(port)': host port \(key) is mapped twice")
            }
        }
        for (name, value) in environment { try EnvironmentVariables.validate(name: name, value: value) }
        if let kernelCommandLine { try VMConfig.validate(kernelCommandLine: kernelCommandLine) }
        if autoRemove, restartPolicy.mode != .never {
            throw UniError.invalid("invalid restart policy '\(restartPolicy)' with --rm: a VM removed when it stops cannot be restarted")
        }
        if let healthCheck {
            try healthCheck.validate()
            guard ports.contains(where: { $0.guestPort == healthCheck.guestPort && $0.transportProtocol == .tcp }) else {
                throw UniError.invalid("invalid health check '\(healthCheck.kind.rawValue):\(healthCheck.guestPort)': guest port \(healthCheck.guestPort) is not published over tcp; add -p HOST:\(healthCheck.guestPort)")
            }
        }
        // An image's own default memory is known once it is resolved: the
        // manager checks again then.
        if memory != nil || imageReference == nil {
            try quota.validate(guestMemory: effectiveMemory)
        } else {
            try ResourceQuota(cpuShares: quota.cpuShares).validate(guestMemory: VMConfig.minimumMemory)
        }
        try diskThrottle.validate()
        return config
    }

    /// Checks that the settings fit an image of `kind`: a disk image boots
    /// its own kernel (no command line), and a kernel image has no boot disk
    /// to throttle.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the image and the flags.
    public func validate(for kind: ImageKind) throws {
        if kind == .disk, let kernelCommandLine, !kernelCommandLine.isEmpty {
            throw UniError.invalid("--cmdline applies to kernel images only; '\(image)' is a disk image")
        }
        if kind == .kernel, !diskThrottle.isUnlimited {
            throw UniError.invalid("invalid disk throttle for '\(image)': it is a kernel image, which has no boot disk; --disk-iops and --disk-bps apply to disk images only")
        }
    }

    /// Checks an image: an image reference (``ImageReference``), or a path
    /// that is absolute (a relative path would be resolved against the
    /// daemon's folder, not the caller's) and free of control characters.
    /// - Returns: the path with `.` and `..` dropped, or the reference in its full form (`app` -> `app:latest`).
    /// - Throws: ``UniError`` naming the value and what is allowed.
    public static func validate(image: String) throws -> String {
        guard !image.isEmpty else { throw UniError.invalid("missing image: give an image reference (NAME:TAG) or the path of a kernel or disk image") }
        guard !image.containsControlCharacter else {
            throw UniError.invalid("invalid image '\(image.escapingControlCharacters)': it must not contain control characters (newline, NUL, ...)")
        }
        guard ImageReference.looksLikePath(image) else {
            do {
                return try ImageReference.parse(image).description
            } catch let error as UniError {
                let why = error.message.split(separator: "': ", maxSplits: 1).last.map(String.init) ?? error.message
                throw UniError.invalid("invalid image '\(image)': not an absolute path, nor an image reference (\(why))")
            }
        }
        guard image.hasPrefix("/") else {
            throw UniError.invalid("invalid image '\(image)': give an absolute path")
        }
        return DataDirectory.absolute(image)
    }

    /// Checks a kernel command line: one line, without NUL, at most
    /// ``maximumKernelCommandLineBytes`` bytes.
    /// - Throws: ``UniError`` naming the problem and the limit.
    public static func validate(kernelCommandLine: String) throws {
        let size = kernelCommandLine.utf8.count
        guard size <= maximumKernelCommandLineBytes else {
            throw UniError.invalid("invalid kernel command line: \(size) bytes, at most \(maximumKernelCommandLineBytes) allowed (x86 Linux's COMMAND_LINE_SIZE is 2048 with the final NUL)")
        }
        guard !kernelCommandLine.containsControlCharacter else {
            throw UniError.invalid("invalid kernel command line '\(kernelCommandLine.escapingControlCharacters)': it must be one line without control characters (newline, NUL, ...)")
        }
    }

    /// Checks a VM name: 1-63 characters of `[A-Za-z0-9_.-]`, starting with a letter or digit.
    /// - Throws: ``UniError`` naming the bad name and the allowed form.
    public static func validate(name: String) throws {
        let bytes = Array(name.utf8)
        let allowed: (UInt8) -> Bool = { byte in
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 95 || byte == 46 || byte == 45
        }
        guard (1...63).contains(bytes.count), bytes.allSatisfy(allowed), let first = bytes.first,
              first != 95, first != 46, first != 45 else {
            throw UniError.invalid("invalid name '\(name.escapingControlCharacters)': use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit")
        }
        guard !VMID.isWellFormed(name) else {
            throw UniError.invalid("invalid name '\(name)': a name must not look like a VM id (12 hex digits)")
        }
    }

    enum CodingKeys: String, CodingKey {
        case name, image, memory = "memory_bytes", cpus, ports, environment = "env"
        case kernelCommandLine = "cmdline", autoRemove = "auto_remove", restartPolicy = "restart", healthCheck = "health_check"
        case quota, diskThrottle = "disk_throttle", network
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        image = try c.decode(String.self, forKey: .image)
        memory = try c.decodeWholeNumberIfPresent(UInt64.self, forKey: .memory, allowed: "bytes, a whole number of MiB and at least \(VMConfig.minimumMemory.bytes)")
            .map(ByteSize.init(bytes:))
        cpus = try c.decodeWholeNumberIfPresent(Int.self, forKey: .cpus, allowed: "1-\(VMConfig.maximumCPUs)")
        ports = try c.decodeIfPresent([PortMapping].self, forKey: .ports) ?? []
        environment = try c.decodeIfPresent([String: String].self, forKey: .environment) ?? [:]
        kernelCommandLine = try c.decodeIfPresent(String.self, forKey: .kernelCommandLine)
        autoRemove = try c.decodeIfPresent(Bool.self, forKey: .autoRemove) ?? false
        restartPolicy = try c.decodeIfPresent(RestartPolicy.self, forKey: .restartPolicy) ?? .never
        healthCheck = try c.decodeIfPresent(HealthCheck.self, forKey: .healthCheck)
        quota = try c.decodeIfPresent(ResourceQuota.self, forKey: .quota) ?? ResourceQuota()
        diskThrottle = try c.decodeIfPresent(DiskThrottle.self, forKey: .diskThrottle) ?? .unlimited
        network = try c.decodeIfPresent(NetworkMode.self, forKey: .network) ?? .user
    }
}
