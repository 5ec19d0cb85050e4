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
