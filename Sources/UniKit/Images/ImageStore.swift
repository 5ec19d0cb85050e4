import Crypto
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The content-addressed image store under `<data-dir>/images`:
///
/// ```
/// images/blobs/sha256/<hex>   every manifest, config and layer, by digest
/// images/index.json           [StoredImage]: name:tag -> manifest digest
/// images/tmp/                 blobs being written, `<pid>-<uuid>` (a dead
///                             process's are removed at open)
/// ```
///
/// A blob is written to `tmp/`, hashed as it goes, fsynced, and renamed to
/// its digest only when digest and size match, so an interrupted or
/// tampered write leaves no blob; two writers of one blob both rename the
/// same bytes. The index is rewritten whole (temp file, fsync, rename)
/// under a lock, so concurrent tags never lose one another. Blobs that no
/// tag references any more are removed by ``remove(_:)``, except those an
/// operation in progress has pinned (``pin(_:)``).
public final class ImageStore: Sendable {
    /// `<data-dir>/images`.
    public let root: String
    /// Pinned digests, counted: two operations may pin one blob, and the
    /// first to finish must not unpin it for the other.
    private let lock = Mutex<[String: Int]>([:])

    /// Opens (and creates) the store at `root`, dropping partial writes left by a crash.
    /// - Throws: ``UniError`` (`storeFailed`) when the folders cannot be made.
    public init(root: String) throws {
        self.root = root
        for folder in [root, root + "/blobs", root + "/blobs/sha256", root + "/tmp"] {
            if mkdir(folder, 0o700) != 0, errno != EEXIST {
                throw UniError(.storeFailed, "cannot create image store folder '\(folder)': \(String(cString: strerror(errno)))")
            }
        }
        // A temporary blob is named `<pid>-<uuid>`: those of processes that
        // are gone are leftovers of a crash; a live writer's are left alone.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/tmp")) ?? [] {
            let owner = name.split(separator: "-", maxSplits: 1).first.flatMap { Int32($0) }
            if let owner, owner > 0, kill(owner, 0) == 0 || errno == EPERM { continue }
            unlink(root + "/tmp/" + name)
        }
    }

    var indexPath: String { root + "/index.json" }

    /// The file of blob `digest` (it may not exist).
    public func blobPath(_ digest: String) -> String {
        root + "/blobs/sha256/" + digest.dropFirst("sha256:".count)
    }

    /// Whether the blob is stored with the descriptor's size.
    public func hasBlob(_ descriptor: OCIDescriptor) -> Bool {
        var status = stat()
        return ImageReference.isDigest(descriptor.digest) && stat(blobPath(descriptor.digest), &status) == 0 && UInt64(status.st_size) == descriptor.size
    }

    // MARK: Writing blobs

    /// Starts writing a blob whose digest and size are known (a pull): the
    /// bytes are checked as they arrive and at ``BlobWriter/commit()``.
    /// - Throws: ``UniError`` (`storeFailed`) when the temporary file cannot be made.
    public func writer(expecting descriptor: OCIDescriptor) throws -> BlobWriter {
        try descriptor.validate()
        return try BlobWriter(store: self, expected: descriptor)
    }

    /// Starts writing a blob of unknown digest (an import).
    public func writer(mediaType: String) throws -> BlobWriter {
        try BlobWriter(store: self, expected: nil, mediaType: mediaType)
    }

    /// Stores `data` as a blob of `mediaType`.
    /// - Returns: its descriptor.
    public func put(_ data: Data, mediaType: String) throws -> OCIDescriptor {
        let writer = try writer(mediaType: mediaType)
        do {
            try writer.write(data)
            return try writer.commit()
        } catch {
            writer.cancel()
            throw error
        }
    }

    /// Copies the file at `path` into the store, hashing it on the way.
    /// - Throws: ``UniError``: `invalidArgument` when it cannot be read
    ///   (naming it), `storeFailed` when the store cannot be written.
    public func importFile(_ path: String, mediaType: String) throws -> OCIDescriptor {
        let source = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard source >= 0 else { throw UniError.invalid("cannot read '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(source) }
        var status = stat()
        guard fstat(source, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw UniError.invalid("'\(path)' is not a regular file")
        }
        let writer = try writer(mediaType: mediaType)
        do {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(source, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count >= 0 else { throw UniError.invalid("cannot read '\(path)': \(String(cString: strerror(errno)))") }
                if count == 0 { break }
                try buffer.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            }
            return try writer.commit()
        } catch {
            writer.cancel()
            throw error
        }
    }

    /// The bytes of a small blob (a manifest or config), checked against its digest.
    /// - Throws: ``UniError`` (`notFound`) when it is not stored, `storeFailed` when it does not match its digest.
    public func read(_ digest: String) throws -> Data {
        guard ImageReference.isDigest(digest) else { throw UniError.invalid("invalid digest '\(digest.escapingControlCharacters)'") }
        guard let data = FileManager.default.contents(atPath: blobPath(digest)) else {
            throw UniError(.notFound, "blob \(digest) is not in the image store")
        }
        guard ImageStore.digest(of: data) == digest else {
            throw UniError(.storeFailed, "blob \(digest) in the image store does not match its digest: remove it (\(blobPath(digest))) and pull the image again")
        }
        return data
    }

    /// `sha256:<hex>` of `data`.
    public static func digest(of data: some DataProtocol) -> String {
        "sha256:" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    // MARK: Manifests and tags

    /// Stores `manifest` (checked as a Uni image whose blobs are all here) and tags it `reference`.
    /// - Returns: the index entry.
    @discardableResult
    public func tag(_ manifest: ImageManifest, as reference: ImageReference, created: Date = Date()) throws -> StoredImage {
        try manifest.validateAsUniImage()
        for blob in [manifest.config] + manifest.layers where !hasBlob(blob) {
            throw UniError(.storeFailed, "blob \(blob.digest) (\(blob.mediaType)) of the manifest is not in the image store")
        }
        let data = try manifest.encoded()
        let descriptor = try put(data, mediaType: UniMediaType.manifest)
        return try tag(manifestDigest: descriptor.digest, as: reference, created: created)
    }

    /// Tags the stored manifest `manifestDigest` as `reference`, replacing the tag's earlier image.
    @discardableResult
    public func tag(manifestDigest: String, as reference: ImageReference, created: Date = Date()) throws -> StoredImage {
        let manifest = try manifest(manifestDigest)
        let size = try UInt64(read(manifestDigest).count) + manifest.config.size + manifest.layers.reduce(0) { $0 + $1.size }
        let entry = StoredImage(reference: reference.withTag(reference.tag ?? ImageReference.defaultTag), digest: manifestDigest, created: created, size: size)
        try updateIndex { entries in
            entries.removeAll { $0.reference == entry.reference }
            entries.append(entry)
        }
        return entry
    }

    /// The manifest stored under `digest`.
    public func manifest(_ digest: String) throws -> ImageManifest {
        let data = try read(digest)
        do {
            return try JSONDecoder().decode(ImageManifest.self, from: data)
        } catch {
            throw UniError(.storeFailed, "manifest \(digest) in the image store cannot be read: \(JSONCoding.describe(error))")
        }
    }

    /// The config blob of `manifest`.
    public func config(of manifest: ImageManifest) throws -> UniImageConfig {
        let data = try read(manifest.config.digest)
        do {
            return try JSONCoding.makeDecoder().decode(UniImageConfig.self, from: data)
        } catch {
            throw UniError.invalid("the image config \(manifest.config.digest) cannot be read: \(JSONCoding.describe(error))")
        }
    }

    /// Every tagged image, newest first.
    public func images() throws -> [StoredImage] {
        try readIndex().sorted { ($0.created, $0.reference.description) > ($1.created, $1.reference.description) }
    }

    /// The image `reference` names: by tag, or by digest (`name@sha256:...`,
    /// or a bare digest prefix of at least 12 hex digits).
    /// - Throws: ``UniError`` (`notFound`) naming the reference.
    public func resolve(_ reference: ImageReference) throws -> StoredImage {
        let entries = try readIndex()
        if let digest = reference.digest {
            if let entry = entries.first(where: { $0.digest == digest && $0.reference.name == reference.name }) { return entry }
            throw UniError(.notFound, "no such image: \(reference)")
        }
        guard let entry = entries.first(where: { $0.reference == reference }) else {
            throw UniError(.notFound, "no such image: \(reference)")
        }
        return entry
    }

    /// Removes the tag `reference`; blobs that no other tag and none of
    /// `keepingManifests` (the images VM records still use) need are deleted.
    /// - Returns: the removed entry.
    /// - Throws: ``UniError`` (`notFound`).
    @discardableResult
    public func remove(_ reference: ImageReference, keepingManifests: Set<String> = []) throws -> StoredImage {
        var removed: StoredImage?
        try updateIndex { entries in
            removed = entries.first { $0.reference == reference }
            entries.removeAll { $0.reference == reference }
        }
        guard let removed else { throw UniError(.notFound, "no such image: \(reference)") }
        collectGarbage(keepingManifests: keepingManifests)
        return removed
    }

    /// Keeps `digests` from garbage collection until the returned pin is dropped
    /// (a pull between writing blobs and tagging them, a running VM's files).
    public func pin(_ digests: [String]) -> Pin {
        lock.withLock { pinned in for digest in digests { pinned[digest, default: 0] += 1 } }
        return Pin(store: self, digests: digests)
    }

    /// Releases a ``pin(_:)`` when dropped.
    public final class Pin: Sendable {
        let store: ImageStore
        let digests: [String]
        init(store: ImageStore, digests: [String]) {
            self.store = store
            self.digests = digests
        }
        deinit {
            let digests = digests
            store.lock.withLock { pinned in
                for digest in digests {
                    let count = (pinned[digest] ?? 1) - 1
                    pinned[digest] = count > 0 ? count : nil
                }
            }
        }
    }

    /// Deletes every blob that neither a tagged manifest nor one of
    /// `keepingManifests` (the images VM records use) references, and that nobody pinned.
    public func collectGarbage(keepingManifests: Set<String> = []) {
        guard let live = liveDigests(keepingManifests: keepingManifests) else { return }
        lock.withLock { pinned in
            let folder = root + "/blobs/sha256"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where !live.contains("sha256:" + name) && pinned["sha256:" + name] == nil {
                unlink(folder + "/" + name)
            }
        }
    }

    /// Deletes those of `digests` that no tagged manifest references and
    /// nobody pinned: what a failed pull wrote, without touching blobs
    /// that other operations (an import between writing and tagging) own.
    func removeUnreferenced(_ digests: [String]) {
        guard !digests.isEmpty, let live = liveDigests() else { return }
        lock.withLock { pinned in
            for digest in digests where ImageReference.isDigest(digest) && !live.contains(digest) && pinned[digest] == nil {
                unlink(blobPath(digest))
            }
        }
    }

    /// Every digest a tagged image or one of `keepingManifests` references;
    /// `nil` when the index cannot be read.
    private func liveDigests(keepingManifests: Set<String> = []) -> Set<String>? {
        guard let entries = try? readIndex() else { return nil }
        var live = Set<String>()
        for digest in Set(entries.map(\.digest)).union(keepingManifests) {
            live.insert(digest)
            if let manifest = try? manifest(digest) {
                live.insert(manifest.config.digest)
                for layer in manifest.layers { live.insert(layer.digest) }
            }
        }
        return live
    }

    // MARK: The index

    private static let indexLock = Mutex(())

    func readIndex() throws -> [StoredImage] {
        guard let data = FileManager.default.contents(atPath: indexPath) else { return [] }
        do {
            return try JSONCoding.makeDecoder().decode([StoredImage].self, from: data)
        } catch {
            throw UniError(.storeFailed, "image index '\(indexPath)' cannot be read (\(JSONCoding.describe(error))): move it aside and import or pull the images again")
        }
    }

    /// Read-modify-write of the index under an exclusive `flock` of
    /// `index.lock` (other processes) and a mutex (other threads).
    private func updateIndex(_ change: (inout [StoredImage]) throws -> Void) throws {
        try ImageStore.indexLock.withLock { _ in
            let lockFile = open(root + "/index.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard lockFile >= 0 else { throw UniError(.storeFailed, "cannot open '\(root)/index.lock': \(String(cString: strerror(errno)))") }
            defer { close(lockFile) }
            while flock(lockFile, LOCK_EX) != 0, errno == EINTR {}
            var entries = try readIndex()
            try change(&entries)
            let data = try JSONCoding.makeEncoder(pretty: true).encode(entries)
            try FileVMStore.writeAtomically(data, to: indexPath)
        }
    }
}
