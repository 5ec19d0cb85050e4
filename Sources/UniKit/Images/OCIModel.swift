import Foundation

/// The media types of Uni images: an OCI image manifest whose config and
/// layers are the VM's parts (docs/images.md). Other OCI tools copy and
/// inspect them as artifacts of type ``artifact``.
public enum UniMediaType {
    /// The manifest: a plain OCI image manifest.
    public static let manifest = "application/vnd.oci.image.manifest.v1+json"
    /// The manifest's `artifactType` (OCI 1.1).
    public static let artifact = "application/vnd.uni.image.v1"
    /// The config blob: ``UniImageConfig`` as JSON.
    public static let config = "application/vnd.uni.image.config.v1+json"
    /// A kernel booted with `-kernel` (ELF/PVH or bzImage).
    public static let kernel = "application/vnd.uni.image.kernel.v1"
    /// An initrd handed to the kernel with `-initrd`.
    public static let initrd = "application/vnd.uni.image.initrd.v1"
    /// A raw bootable disk image.
    public static let disk = "application/vnd.uni.image.disk.v1.raw"
}

/// A content descriptor: what a manifest says of a blob.
public struct OCIDescriptor: Codable, Sendable, Hashable {
    /// The blob's media type.
    public var mediaType: String
    /// `sha256:<hex>` of its bytes.
    public var digest: String
    /// Its size in bytes.
    public var size: UInt64
    /// Free-form annotations (`org.opencontainers.image.title`).
    public var annotations: [String: String]?

    /// A descriptor.
    public init(mediaType: String, digest: String, size: UInt64, annotations: [String: String]? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
    }

    /// Checks the digest's form and that the size is sane.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the descriptor.
    public func validate() throws {
        guard ImageReference.isDigest(digest) else {
            throw UniError.invalid("invalid descriptor digest '\(digest.escapingControlCharacters)': expected sha256: and 64 lowercase hex digits")
        }
    }
}

/// An OCI image manifest (schema 2).
public struct ImageManifest: Codable, Sendable, Hashable {
    /// Always 2.
    public var schemaVersion: Int
    /// ``UniMediaType/manifest``.
    public var mediaType: String?
    /// ``UniMediaType/artifact`` for Uni images.
    public var artifactType: String?
    /// The config blob.
    public var config: OCIDescriptor
    /// The VM's parts: one kernel or one disk, and an optional initrd.
    public var layers: [OCIDescriptor]
    /// `org.opencontainers.image.created` and the like.
    public var annotations: [String: String]?

    /// A Uni manifest for `config` and `layers`.
    public init(config: OCIDescriptor, layers: [OCIDescriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        mediaType = UniMediaType.manifest
        artifactType = UniMediaType.artifact
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }

    /// The layer of `mediaType`, if any.
    public func layer(_ mediaType: String) -> OCIDescriptor? { layers.first { $0.mediaType == mediaType } }

    /// Checks that this is a Uni image: schema 2, a Uni config, one kernel
    /// or one disk (not both), at most one initrd (with a kernel), and
    /// well-formed digests.
    /// - Throws: ``UniError`` (`invalidArgument`) saying what is wrong.
    public func validateAsUniImage() throws {
        guard schemaVersion == 2 else { throw UniError.invalid("manifest schemaVersion is \(schemaVersion), expected 2") }
        guard config.mediaType == UniMediaType.config else {
            throw UniError.invalid("not a Uni image: its config is '\(config.mediaType)', expected '\(UniMediaType.config)'")
        }
        try config.validate()
        for layer in layers { try layer.validate() }
        let count = { (type: String) in self.layers.filter { $0.mediaType == type }.count }
        let kernels = count(UniMediaType.kernel), disks = count(UniMediaType.disk), initrds = count(UniMediaType.initrd)
        guard kernels + disks == 1, initrds <= kernels, kernels + disks + initrds == layers.count else {
            throw UniError.invalid("not a Uni image: it needs one kernel or one disk layer and at most one initrd with a kernel (has \(layers.map(\.mediaType)))")
        }
    }

    /// The manifest's bytes as stored and pushed: sorted keys, so one
    /// manifest always has one digest.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
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
        memory = try c.decodeIfPresent(UInt64.self, forKey: .memory).map(ByteSize.init(bytes:))
        cpus = try c.decodeIfPresent(Int.self, forKey: .cpus)
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
