import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// Pulls: the manifest, then each blob the store lacks, verified as written.
extension RegistryClient {
    /// Pulls `reference` (which names a registry) into `store`: the
    /// manifest, then every blob the store lacks, each verified (size and
    /// digest) as it is written; then tags it as `reference`. The manifest
    /// is stored with the registry's bytes, so its digest is the registry's.
    /// - Returns: the new index entry.
    /// - Throws: ``UniError`` with one line: unreachable, 401/403, manifest
    ///   unknown (naming the reference), not a Uni image (naming its media
    ///   types), digest mismatch, truncated blob, disk full. Nothing is
    ///   tagged then, and the blobs this pull wrote are removed.
    public func pull(_ reference: ImageReference, into store: ImageStore, insecure: Bool, progress: @escaping @Sendable (RegistryProgress) -> Void) async throws -> StoredImage {
        do {
            return try await pullImage(reference, into: store, insecure: insecure, progress: progress)
        } catch let error as UniError {
            throw UniError(error.code, "cannot pull \(reference): \(error.message)", cause: error)
        }
    }

    private static let manifestAccept = [
        UniMediaType.manifest, "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ].joined(separator: ", ")

    func pullImage(_ reference: ImageReference, into store: ImageStore, insecure: Bool, progress: @escaping @Sendable (RegistryProgress) -> Void) async throws -> StoredImage {
        guard let registry = reference.registry else {
            throw UniError.invalid("'\(reference)' names no registry: use REGISTRY/REPOSITORY[:TAG], e.g. localhost:5000/\(reference.repository)")
        }
        let endpoint = try self.endpoint(registry, insecure: insecure)
        let session = RegistrySession(endpoint: endpoint, repository: reference.repository, action: "pull",
                                      scopes: ["repository:\(reference.repository):pull"], credentials: try credentialStore?.credentials(for: registry))
        let (manifestData, manifest) = try await fetchManifest(reference, session)
        let manifestDigest = ImageStore.digest(of: manifestData)
        let blobs = [manifest.config] + manifest.layers
        var pin: ImageStore.Pin? = store.pin([manifestDigest] + blobs.map(\.digest))
        var written: [String] = []
        do {
            for blob in blobs {
                progress(.started(digest: blob.digest, mediaType: blob.mediaType, size: blob.size))
                if store.hasBlob(blob) {
                    progress(.skipped(digest: blob.digest, reason: .alreadyPresent))
                    continue
                }
                written.append(blob.digest)
                try await fetchBlob(blob, of: reference, into: store, session: session, progress: progress)
                progress(.finished(digest: blob.digest))
            }
            try store.config(of: manifest).validate()
            if !store.hasBlob(OCIDescriptor(mediaType: UniMediaType.manifest, digest: manifestDigest, size: UInt64(manifestData.count))) {
                written.append(manifestDigest)
                _ = try store.put(manifestData, mediaType: UniMediaType.manifest)
            }
            let entry = try store.tag(manifestDigest: manifestDigest, as: reference.withTag(reference.tag ?? ImageReference.defaultTag))
            pin = nil
            store.recordSources(blobs.map(\.digest), repository: reference.name)
            progress(.manifest(digest: manifestDigest))
            logger.debug("pulled image", metadata: ["image": "\(reference)", "digest": "\(manifestDigest)"])
            return entry
        } catch {
            pin = nil  // released first: removeUnreferenced keeps pinned blobs
            store.removeUnreferenced(written)
            throw error
        }
    }

    /// GET the manifest, bounded, checked against the reference's digest and
    /// the registry's `Docker-Content-Digest`, and checked as a Uni image.
    func fetchManifest(_ reference: ImageReference, _ session: RegistrySession) async throws -> (Data, ImageManifest) {
        let tagOrDigest = reference.digest ?? reference.tag ?? ImageReference.defaultTag
        let url = session.endpoint.baseURL + "/v2/\(reference.repository)/manifests/\(tagOrDigest)"
        let limit = configuration.maximumManifestBytes
        let (data, contentType, announced): (Data, String?, String?) = try await send(session, .GET, url, headers: ["Accept": Self.manifestAccept]) { response, _ in
            switch response.status.code {
            case 200:
                let body: ByteBuffer
                do {
                    body = try await response.body.collect(upTo: limit)
                } catch is NIOTooManyBytesError {
                    throw UniError.invalid("its manifest is larger than \(limit) bytes")
                }
                let type = response.headers.first(name: "Content-Type").map { ($0.split(separator: ";").first.map(String.init) ?? "").trimmingCharacters(in: .whitespaces) }
                return (Data(body.readableBytesView), type, response.headers.first(name: "Docker-Content-Digest"))
            case 404:
                let summary = RegistryErrorBody.summary(try? await response.body.collect(upTo: 1 << 16))
                throw UniError(.notFound, "manifest unknown: registry \(session.registry) has no \(reference.repository):\(tagOrDigest)\(summary.map { " (\($0))" } ?? "")")
            default:
                throw await self.unexpected(response, "the manifest GET of \(tagOrDigest)", session)
            }
        }
        let digest = ImageStore.digest(of: data)
        if let expected = reference.digest, expected != digest {
            throw UniError.invalid("manifest digest mismatch: asked for \(expected), the registry sent \(digest)")
        }
        if let announced, ImageReference.isDigest(announced), announced != digest {
            throw UniError.invalid("manifest digest mismatch: the registry says \(announced), its bytes hash to \(digest)")
        }
        let manifest: ImageManifest
        do {
            manifest = try JSONDecoder().decode(ImageManifest.self, from: data)
        } catch {
            throw UniError.invalid("not a Uni image: its manifest is \(contentType ?? "of no media type") and cannot be read as an OCI image manifest")
        }
        let mediaType = manifest.mediaType ?? contentType ?? "unknown"
        guard mediaType == UniMediaType.manifest, manifest.config.mediaType == UniMediaType.config else {
            throw UniError.invalid("not a Uni image: its manifest is \(mediaType) with config \(manifest.config.mediaType) and layers \(manifest.layers.map(\.mediaType).joined(separator: ", ")); a Uni image is an OCI manifest with config \(UniMediaType.config)")
        }
        try manifest.validateAsUniImage()
        return (data, manifest)
    }

    /// GET one blob into the store, verified as it is written.
    func fetchBlob(_ blob: OCIDescriptor, of reference: ImageReference, into store: ImageStore, session: RegistrySession, progress: @escaping @Sendable (RegistryProgress) -> Void) async throws {
        let url = session.endpoint.baseURL + "/v2/\(reference.repository)/blobs/\(blob.digest)"
        let writer = try store.writer(expecting: blob)
        defer { writer.cancel() }
        let meter = ProgressMeter(digest: blob.digest, total: blob.size, progress: progress)
        try await send(session, .GET, url) { response, watchdog in
            guard response.status.code == 200 else {
                if response.status.code == 404 {
                    let summary = RegistryErrorBody.summary(try? await response.body.collect(upTo: 1 << 16))
                    throw UniError(.notFound, "blob \(blob.digest) (\(blob.mediaType)) is not in the registry\(summary.map { " (\($0))" } ?? "")")
                }
                throw await self.unexpected(response, "the GET of blob \(blob.digest)", session)
            }
            if let length = response.headers.first(name: "Content-Length").flatMap(UInt64.init), length > blob.size {
                throw UniError.invalid("blob \(blob.digest) is \(length) bytes at the registry, but the manifest says \(blob.size): nothing was stored")
            }
            do {
                for try await buffer in response.body {
                    watchdog.feed()
                    try buffer.withUnsafeReadableBytes { try writer.write($0) }
                    meter.add(buffer.readableBytes)
                }
            } catch let error as UniError {
                throw error
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw UniError.invalid("blob \(blob.digest) is truncated: the connection ended after \(writer.size) of \(blob.size) bytes (\(error)); nothing was stored")
            }
        }
        guard writer.size == blob.size else {
            throw UniError.invalid("blob \(blob.digest) is truncated: the registry sent \(writer.size) of \(blob.size) bytes; nothing was stored")
        }
        _ = try writer.commit()
        meter.finish()
    }
}
