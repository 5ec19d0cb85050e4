#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One tagged image of the local store: `uni images`' row.
public struct StoredImage: Codable, Sendable, Hashable {
    /// The name and tag it is stored under.
    public var reference: ImageReference
    /// The manifest's digest.
    public var digest: String
    /// When it was imported or pulled.
    public var created: Date
    /// The manifest, config and layers together, in bytes.
    public var size: UInt64

    /// A row.
    public init(reference: ImageReference, digest: String, created: Date, size: UInt64) {
        self.reference = reference
        self.digest = digest
        self.created = created
        self.size = size
    }
}

/// The config blob of a Uni image: a VM's defaults. `uni run` flags win
/// over each of them.
public struct UniImageConfig: Codable, Sendable, Hashable {
    /// The kernel command line (kernel images).
    public var kernelCommandLine: String?
    /// The guest memory.
    public var memory: ByteSize?
    /// The vCPUs.
    public var cpus: Int?
    /// Guest ports the image serves (`80/tcp`): documentation for `-p`.
    public var exposedPorts: [String]
    /// Environment variables handed to the guest.
    public var environment: [String: String]

    /// A config.
    public init(kernelCommandLine: String? = nil, memory: ByteSize? = nil, cpus: Int? = nil, exposedPorts: [String] = [], environment: [String: String] = [:]) {
        self.kernelCommandLine = kernelCommandLine
        self.memory = memory
        self.cpus = cpus
        self.exposedPorts = exposedPorts
        self.environment = environment
    }

    enum CodingKeys: String, CodingKey {
        case kernelCommandLine = "cmdline", memory = "memory_bytes", cpus, exposedPorts = "exposed_ports", environment = "env"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kernelCommandLine = try c.decodeIfPresent(String.self, forKey: .kernelCommandLine)
        memory = try c.decodeWholeNumberIfPresent(UInt64.self, forKey: .memory, allowed: "bytes").map(ByteSize.init(bytes:))
        cpus = try c.decodeWholeNumberIfPresent(Int.self, forKey: .cpus, allowed: "1-\(VMConfig.maximumCPUs)")
        exposedPorts = try c.decodeIfPresent([String].self, forKey: .exposedPorts) ?? []
        environment = try c.decodeIfPresent([String: String].self, forKey: .environment) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(kernelCommandLine, forKey: .kernelCommandLine)
        try c.encodeIfPresent(memory?.bytes, forKey: .memory)
        try c.encodeIfPresent(cpus, forKey: .cpus)
        try c.encode(exposedPorts, forKey: .exposedPorts)
        try c.encode(environment, forKey: .environment)
    }

    /// Checks each default as `uni run` would check the flag.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the value.
    public func validate() throws {
        var probe = VMConfig(image: "/image", kernelCommandLine: kernelCommandLine)
        if let memory { probe.memory = memory }
        if let cpus { probe.cpus = cpus }
        probe.environment = environment
        _ = try probe.validated()
        for port in exposedPorts {
            let parts = port.split(separator: "/")
            guard (1...2).contains(parts.count), let number = UInt16(parts[0]), number > 0,
                  parts.count == 1 || parts[1] == "tcp" || parts[1] == "udp" else {
                throw UniError.invalid("invalid exposed port '\(port.escapingControlCharacters)': expected PORT[/tcp|udp], PORT 1-65535")
            }
        }
    }
}

/// `POST /v1/images/import` (`uni image import`): files on unid's host
/// that become a stored image.
public struct ImageImportRequest: Codable, Sendable, Hashable {
    /// The name and tag to store it under (`app:1`).
    public var reference: String
    /// An absolute path of a kernel (ELF/PVH or bzImage); or give ``disk``.
    public var kernel: String?
    /// An absolute path of an initrd (with a kernel only).
    public var initrd: String?
    /// An absolute path of a raw bootable disk image; or give ``kernel``.
    public var disk: String?
    /// The defaults of VMs run from it.
    public var config: UniImageConfig

    /// A request.
    public init(reference: String, kernel: String? = nil, initrd: String? = nil, disk: String? = nil, config: UniImageConfig = UniImageConfig()) {
        self.reference = reference
        self.kernel = kernel
        self.initrd = initrd
        self.disk = disk
        self.config = config
    }

    /// Checks the reference, the files' form (one kernel or one disk, an
    /// initrd only with a kernel, absolute paths) and the config.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the bad value.
    public func validate() throws {
        let parsed = try ImageReference.parse(reference)
        guard parsed.digest == nil else { throw UniError.invalid("invalid image reference '\(reference)': import needs NAME:TAG, not a digest") }
        guard (kernel == nil) != (disk == nil) else {
            throw UniError.invalid("give one of --kernel or --disk (\(kernel == nil ? "neither" : "both") given)")
        }
        if initrd != nil, kernel == nil { throw UniError.invalid("--initrd applies to a kernel, not to --disk") }
        for (flag, path) in [("--kernel", kernel), ("--initrd", initrd), ("--disk", disk)] {
            guard let path else { continue }
            guard path.hasPrefix("/"), !path.containsControlCharacter else {
                throw UniError.invalid("invalid \(flag) '\(path.escapingControlCharacters)': give an absolute path")
            }
        }
        if disk != nil, let cmdline = config.kernelCommandLine, !cmdline.isEmpty {
            throw UniError.invalid("--cmdline applies to kernel images only; this image is a disk")
        }
        try config.validate()
    }

    enum CodingKeys: String, CodingKey {
        case reference, kernel, initrd, disk, config
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reference = try c.decode(String.self, forKey: .reference)
        kernel = try c.decodeIfPresent(String.self, forKey: .kernel)
        initrd = try c.decodeIfPresent(String.self, forKey: .initrd)
        disk = try c.decodeIfPresent(String.self, forKey: .disk)
        config = try c.decodeIfPresent(UniImageConfig.self, forKey: .config) ?? UniImageConfig()
    }
}

/// `POST /v1/images/tag` (`uni tag SOURCE TARGET`).
public struct ImageTagRequest: Codable, Sendable, Hashable {
    /// The stored image.
    public var source: String
    /// The new name and tag.
    public var target: String

    /// A request.
    public init(source: String, target: String) {
        self.source = source
        self.target = target
    }
}

/// `POST /v1/images/pull` (`uni pull`).
public struct ImagePullRequest: Codable, Sendable, Hashable {
    /// `REGISTRY/REPO[:TAG]`.
    public var reference: String
    /// Plain HTTP to the registry (loopback registries always may).
    public var insecure: Bool

    /// A request.
    public init(reference: String, insecure: Bool = false) {
        self.reference = reference
        self.insecure = insecure
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reference = try c.decode(String.self, forKey: .reference)
        insecure = try c.decodeIfPresent(Bool.self, forKey: .insecure) ?? false
    }

    enum CodingKeys: String, CodingKey { case reference, insecure }
}

/// `POST /v1/images/push` (`uni push SOURCE [DESTINATION]`).
public struct ImagePushRequest: Codable, Sendable, Hashable {
    /// The stored image.
    public var source: String
    /// `REGISTRY/REPO[:TAG]`; `nil`: the source's own name (which must name a registry).
    public var destination: String?
    /// Plain HTTP to the registry (loopback registries always may).
    public var insecure: Bool

    /// A request.
    public init(source: String, destination: String? = nil, insecure: Bool = false) {
        self.source = source
        self.destination = destination
        self.insecure = insecure
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        source = try c.decode(String.self, forKey: .source)
        destination = try c.decodeIfPresent(String.self, forKey: .destination)
        insecure = try c.decodeIfPresent(Bool.self, forKey: .insecure) ?? false
    }

    enum CodingKeys: String, CodingKey { case source, destination, insecure }
}

/// `POST /v1/auth` (`uni login`): credentials checked against the registry, then saved.
public struct RegistryLoginRequest: Codable, Sendable, Hashable {
    /// `host[:port]`.
    public var registry: String
    /// The user name.
    public var username: String
    /// The password or token.
    public var password: String
    /// Plain HTTP to the registry (loopback registries always may).
    public var insecure: Bool

    /// A request.
    public init(registry: String, username: String, password: String, insecure: Bool = false) {
        self.registry = registry
        self.username = username
        self.password = password
        self.insecure = insecure
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        registry = try c.decode(String.self, forKey: .registry)
        username = try c.decode(String.self, forKey: .username)
        password = try c.decode(String.self, forKey: .password)
        insecure = try c.decodeIfPresent(Bool.self, forKey: .insecure) ?? false
    }

    enum CodingKeys: String, CodingKey { case registry, username, password, insecure }
}

/// One line of a push or pull's NDJSON answer: a layer's progress, then
/// `done` with the image, or `error` (the transfer failed after it began).
public struct ImageTransferEvent: Codable, Sendable, Hashable {
    /// `started`, `advanced`, `skipped`, `finished`, `manifest`, `done` or `error`.
    public var type: String
    /// The blob (or manifest) digest.
    public var digest: String?
    /// The blob's media type (`started`).
    public var mediaType: String?
    /// Bytes moved so far (`advanced`).
    public var bytes: UInt64?
    /// The blob's size (`started`, `advanced`).
    public var total: UInt64?
    /// Why it was skipped (`skipped`): `already present`, `mounted from REPO`.
    public var reason: String?
    /// The pulled or pushed image (`done`).
    public var image: StoredImage?
    /// The error's message and code (`error`).
    public var error: String?
    /// The error's code (`error`), as in `{"error","code"}` answers.
    public var code: String?

    /// An event.
    public init(type: String, digest: String? = nil, mediaType: String? = nil, bytes: UInt64? = nil, total: UInt64? = nil,
                reason: String? = nil, image: StoredImage? = nil, error: String? = nil, code: String? = nil) {
        self.type = type
        self.digest = digest
        self.mediaType = mediaType
        self.bytes = bytes
        self.total = total
        self.reason = reason
        self.image = image
        self.error = error
        self.code = code
    }

    enum CodingKeys: String, CodingKey {
        case type, digest, mediaType = "media_type", bytes, total, reason, image, error, code
    }
}
