import Foundation
import Synchronization

/// The images of one data dir: imports, tags, removal, and what a VM
/// created from a reference boots. Registry transfers go through
/// ``ImageRegistry``; the store is opened at first use.
public final class ImageService: Sendable {
    /// `<data-dir>/images`.
    public let directory: String
    private let opened = Mutex<ImageStore?>(nil)

    /// The images under `directory`.
    public init(directory: String) {
        self.directory = directory
    }

    /// The store, created at first use.
    /// - Throws: ``UniError`` (`storeFailed`) when its folders cannot be made.
    public func store() throws -> ImageStore {
        try opened.withLock { store in
            if let store { return store }
            let created = try ImageStore(root: directory)
            store = created
            return created
        }
    }

    /// What a VM created from an image boots, and the image's defaults.
    public struct Resolution: Sendable {
        /// The record's binding.
        public var binding: ImageBinding
        /// Kernel or disk.
        public var kind: ImageKind
        /// The image's defaults.
        public var config: UniImageConfig
    }

    /// Resolves `reference` in the store for a new VM.
    /// - Throws: ``UniError`` (`notFound`) for an unknown image, naming it.
    public func resolve(_ reference: ImageReference) throws -> Resolution {
        let store = try store()
        let entry = try store.resolve(reference)
        let manifest = try store.manifest(entry.digest)
        let config = try store.config(of: manifest)
        let kernel = manifest.layer(UniMediaType.kernel).map { store.blobPath($0.digest) }
        let binding = ImageBinding(reference: entry.reference.description, digest: entry.digest, kernelPath: kernel,
                                   initrdPath: manifest.layer(UniMediaType.initrd).map { store.blobPath($0.digest) },
                                   diskPath: manifest.layer(UniMediaType.disk).map { store.blobPath($0.digest) })
        return Resolution(binding: binding, kind: kernel == nil ? .disk : .kernel, config: config)
    }

    /// Imports the files of `request` as a new image (replacing the tag's earlier one).
    /// - Throws: ``UniError``: `invalidArgument` for a bad request, a file
    ///   that cannot be read or is not the kind its flag says; `storeFailed`.
    public func importImage(_ request: ImageImportRequest, now: Date = Date()) async throws -> StoredImage {
        try request.validate()
        let reference = try ImageReference.parse(request.reference)
        if let kernel = request.kernel, try await ImageInspector.inspect(kernel) != .kernel {
            throw UniError.invalid("--kernel '\(kernel)' is a disk image: give it with --disk")
        }
        if let disk = request.disk, try await ImageInspector.inspect(disk) != .disk {
            throw UniError.invalid("--disk '\(disk)' is a kernel image: give it with --kernel")
        }
        let store = try store()
        return try await Self.offThread {
            var layers: [OCIDescriptor] = []
            for (path, type) in [(request.kernel, UniMediaType.kernel), (request.initrd, UniMediaType.initrd), (request.disk, UniMediaType.disk)] {
                guard let path else { continue }
                var layer = try store.importFile(path, mediaType: type)
                layer.annotations = ["org.opencontainers.image.title": (path as NSString).lastPathComponent]
                layers.append(layer)
            }
            // Pinned until tagged: a removal meanwhile must not collect them.
            let pin = store.pin(layers.map(\.digest))
            defer { withExtendedLifetime(pin) {} }
            let config = try store.put(try JSONCoding.makeEncoder().encode(request.config), mediaType: UniMediaType.config)
            let manifest = ImageManifest(config: config, layers: layers, annotations: ["org.opencontainers.image.created": RFC3339.string(from: now)])
            return try store.tag(manifest, as: reference, created: now)
        }
    }

    /// Every stored image, newest first.
    public func list() throws -> [StoredImage] { try store().images() }

    /// Tags the image `source` names as `target` too.
    /// - Throws: ``UniError``: `notFound`, or `invalidArgument` for a bad reference or a digest target.
    public func tag(_ source: String, as target: String, now: Date = Date()) throws -> StoredImage {
        let store = try store()
        let entry = try store.resolve(try ImageReference.parse(source))
        let destination = try ImageReference.parse(target)
        guard destination.digest == nil else { throw UniError.invalid("invalid tag '\(target)': a tag cannot name a digest") }
        return try store.tag(manifestDigest: entry.digest, as: destination, created: now)
    }

    /// Removes the tag `reference`. The caller says which manifests VM
    /// records use: their blobs stay until the last such VM is removed.
    public func remove(_ reference: ImageReference, keepingManifests: Set<String>) throws -> StoredImage {
        try store().remove(reference, keepingManifests: keepingManifests)
    }

    /// Drops blobs that no tag and none of `keepingManifests` need (after a VM's removal).
    public func collectGarbage(keepingManifests: Set<String>) {
        (try? store())?.collectGarbage(keepingManifests: keepingManifests)
    }

    /// Runs blocking file work off the caller's executor.
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
