import Foundation
import Synchronization
import Tracing

/// The images of one data dir: imports, tags, removal, and what a VM
/// created from a reference boots. Registry transfers go through
/// ``ImageRegistry``; the store is opened at first use.
public final class ImageService: Sendable {
    /// `<data-dir>/images`.
    public let directory: String
    /// Saved registry logins (`uni login`), when the service has a data dir.
    public let credentials: RegistryCredentialStore?
    /// What pushes and pulls.
    public let registry: RegistryClient
    private let telemetry: VMTelemetry?
    private let tracer: any Tracer
    private let opened = Mutex<ImageStore?>(nil)

    /// The images under `directory`; registry logins in `credentialsPath`.
    /// - Parameters:
    ///   - telemetry: counts pushes and pulls (`uni_registry_*_total`).
    ///   - tracer: gets an `image.push` / `image.pull` span per transfer.
    public init(directory: String, credentialsPath: String? = nil, telemetry: VMTelemetry? = nil, tracer: any Tracer = NoOpTracer(),
                registry: RegistryClient? = nil) {
        self.directory = directory
        let credentials = credentialsPath.map(RegistryCredentialStore.init(path:))
        self.credentials = credentials
        self.registry = registry ?? RegistryClient(credentials: credentials)
        self.telemetry = telemetry
        self.tracer = tracer
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
        /// Keeps the image's blobs from garbage collection until the VM
        /// that boots them is in the manager's table (an `rmi` meanwhile
        /// then untags the image and leaves the files to the VM).
        public var pin: ImageStore.Pin
    }

    /// Resolves `reference` in the store for a new VM.
    /// - Throws: ``UniError`` (`notFound`) for an unknown image, naming it.
    public func resolve(_ reference: ImageReference) throws -> Resolution {
        let store = try store()
        let entry = try store.resolve(reference)
        let manifest = try store.manifest(entry.digest)
        // Pinned before the files are checked: a garbage collection from here on keeps them.
        let pin = store.pin([entry.digest, manifest.config.digest] + manifest.layers.map(\.digest))
        let config = try store.config(of: manifest)
        let kernel = manifest.layer(UniMediaType.kernel).map { store.blobPath($0.digest) }
        let binding = ImageBinding(reference: entry.reference.description, digest: entry.digest, kernelPath: kernel,
                                   initrdPath: manifest.layer(UniMediaType.initrd).map { store.blobPath($0.digest) },
                                   diskPath: manifest.layer(UniMediaType.disk).map { store.blobPath($0.digest) })
        for path in [binding.kernelPath, binding.initrdPath, binding.diskPath].compactMap({ $0 }) where access(path, R_OK) != 0 {
            throw UniError(.notFound, "image \(entry.reference) is no longer whole in the image store (\(path) is missing): import or pull it again")
        }
        return Resolution(binding: binding, kind: kernel == nil ? .disk : .kernel, config: config, pin: pin)
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
            // Each blob is pinned as soon as it is stored: an `rmi`'s garbage
            // collection meanwhile must not take it before the tag exists.
            var pins: [ImageStore.Pin] = []
            do {
                for (flag, path, type) in [("--kernel", request.kernel, UniMediaType.kernel), ("--initrd", request.initrd, UniMediaType.initrd),
                                           ("--disk", request.disk, UniMediaType.disk)] {
                    guard let path else { continue }
                    var layer: OCIDescriptor
                    do {
                        layer = try store.importFile(path, mediaType: type)
                    } catch let error as UniError where error.code == .invalidArgument {
                        throw UniError.invalid("invalid \(flag): \(error.message)")
                    }
                    pins.append(store.pin([layer.digest]))
                    layer.annotations = ["org.opencontainers.image.title": (path as NSString).lastPathComponent]
                    layers.append(layer)
                }
                let config = try store.put(try JSONCoding.makeEncoder().encode(request.config), mediaType: UniMediaType.config)
                pins.append(store.pin([config.digest]))
                let manifest = ImageManifest(config: config, layers: layers, annotations: ["org.opencontainers.image.created": RFC3339.string(from: now)])
                let entry = try store.tag(manifest, as: reference, created: now)
                withExtendedLifetime(pins) {}
                return entry
            } catch {
                // What this import stored and no tag needs goes.
                let written = layers.map(\.digest)
                pins.removeAll()
                store.removeUnreferenced(written)
                throw error
            }
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

    // MARK: Registries

    /// Whether plain HTTP may be used: asked for, or a loopback registry
    /// (`localhost`, `127.x.x.x`, `::1`), as docker allows.
    public static func allowsPlainHTTP(_ registry: String, insecure: Bool) -> Bool {
        insecure || RegistryEndpoint.isLoopback(registry)
    }

    /// Pulls `reference` (which names a registry) into the store.
    /// - Throws: ``UniError`` as ``RegistryClient/pull(_:into:insecure:progress:)`` does.
    public func pull(_ reference: ImageReference, insecure: Bool = false, progress: @escaping @Sendable (RegistryProgress) -> Void = { _ in }) async throws -> StoredImage {
        let host = try reference.pullRegistry()
        let store = try store()
        return try await transfer("image.pull", push: false, reference: reference.description, registry: host) {
            try await registry.pull(reference, into: store, insecure: ImageService.allowsPlainHTTP(host, insecure: insecure), progress: progress)
        }
    }

    /// Pushes the stored image `source` to `destination` (its own name when `nil`).
    /// - Returns: the destination and the pushed manifest's digest.
    public func push(_ source: String, to destination: String?, insecure: Bool = false,
                     progress: @escaping @Sendable (RegistryProgress) -> Void = { _ in }) async throws -> (destination: ImageReference, digest: String) {
        let store = try store()
        let (entry, target) = try pushPlan(source, to: destination)
        let host = target.registry ?? ""
        let digest = try await transfer("image.push", push: true, reference: target.description, registry: host) {
            try await registry.push(entry, from: store, to: target, insecure: ImageService.allowsPlainHTTP(host, insecure: insecure), progress: progress)
        }
        return (target, digest)
    }

    /// The stored image `source` and where it goes (`destination`, else
    /// its own name), checked before anything is sent.
    /// - Throws: ``UniError``: `notFound` for an unknown source, `invalidArgument` for a destination without a registry.
    public func pushPlan(_ source: String, to destination: String?) throws -> (source: StoredImage, destination: ImageReference) {
        let entry = try store().resolve(try ImageReference.parse(source))
        let target = try destination.map(ImageReference.parse) ?? entry.reference
        try target.checkPushDestination(source: source)
        return (entry, target)
    }

    /// Checks `credentials` against `registry`, then saves them (mode 0600).
    public func login(registry host: String, credentials login: RegistryCredentials, insecure: Bool = false) async throws {
        guard ImageReference.isRegistry(host) else {
            throw UniError.invalid("invalid registry '\(host.escapingControlCharacters)': expected HOST or HOST:PORT")
        }
        guard let credentials else { throw UniError(.unavailable, "this image service keeps no credentials") }
        try await registry.login(registry: host, credentials: login, insecure: ImageService.allowsPlainHTTP(host, insecure: insecure))
        try credentials.save(login, for: host)
    }

    /// Forgets the saved login of `registry`.
    /// - Returns: whether there was one.
    public func logout(registry host: String) throws -> Bool {
        try credentials?.remove(registry: host) ?? false
    }

    /// Runs one transfer in a span, counted by its outcome.
    private func transfer<T: Sendable>(_ name: String, push: Bool, reference: String, registry host: String,
                                       _ body: () async throws -> T) async throws -> T {
        let span = tracer.startSpan(name, context: ServiceContext.current ?? .topLevel, ofKind: .client)
        span.attributes["image.reference"] = reference
        span.attributes["server.address"] = host
        defer { span.end() }
        do {
            let result = try await body()
            telemetry?.recordRegistryTransfer(push: push, succeeded: true)
            return result
        } catch {
            telemetry?.recordRegistryTransfer(push: push, succeeded: false)
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            span.attributes["error.type"] = (error as? UniError)?.code.description ?? "internal"
            throw error
        }
    }

    /// Runs blocking file work off the caller's executor.
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
