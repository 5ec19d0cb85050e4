import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// Tuning of a ``RegistryClient``: upload sizes and the stall timeout.
public struct RegistryClientConfiguration: Sendable {
    /// Blobs up to this size are uploaded in one PUT; larger ones in
    /// chunks of ``chunkSize`` (PATCH with `Content-Range`, then PUT `?digest=`).
    public var monolithicUploadLimit: UInt64
    /// The size of one PATCH of a chunked upload.
    public var chunkSize: UInt64
    /// A transfer (connecting included) that moves no byte and gets no
    /// answer for this long is abandoned with an error naming the registry.
    public var stallTimeout: Duration
    /// The largest manifest a pull accepts.
    public var maximumManifestBytes: Int

    /// A configuration: 32 MiB monolithic limit, 16 MiB chunks, 30 s stall timeout, 4 MiB manifests.
    public init(monolithicUploadLimit: UInt64 = 32 << 20, chunkSize: UInt64 = 16 << 20, stallTimeout: Duration = .seconds(30), maximumManifestBytes: Int = 4 << 20) {
        self.monolithicUploadLimit = monolithicUploadLimit
        self.chunkSize = max(chunkSize, 1)
        self.stallTimeout = stallTimeout
        self.maximumManifestBytes = maximumManifestBytes
    }
}

/// A client of OCI Distribution v1.1 registries that pushes and pulls Uni
/// images between a registry and an ``ImageStore`` (docs/images.md).
///
/// - Blobs: HEAD first (present blobs are skipped), a cross-repository
///   mount when the store knows another repository of the same registry
///   that holds the blob (``ImageStore/knownSources(of:)``, or the source
///   image's own repository), else an upload: monolithic up to
///   ``RegistryClientConfiguration/monolithicUploadLimit``, chunked above.
///   Bodies stream from and to disk; a layer is never held in memory whole.
/// - Pulls verify every blob's size and digest as it is written to the
///   store; a failed pull tags nothing and leaves no blob it wrote.
/// - Auth: the `WWW-Authenticate` challenge of a 401 drives Basic auth or
///   the Bearer token flow (anonymous tokens too); tokens are cached per
///   registry and scope for the client's life and renewed on a 401.
/// - `insecure` means plain HTTP; without it only HTTPS is spoken. Plain
///   HTTP is allowed for any host (a dev registry on the LAN) but logged
///   as a warning for non-loopback hosts, since credentials then travel in clear.
public final class RegistryClient: Sendable {
    let httpClient: HTTPClient
    let credentialStore: RegistryCredentialStore?
    let configuration: RegistryClientConfiguration
    let logger: Logger
    /// `Authorization` values by ``RegistrySession/cacheKey``.
    let authorizations = Mutex<[String: String]>([:])

    /// The HTTP client registry clients use unless given one, alive for
    /// the process: a 10 s connect timeout, a failed connection reported
    /// at once rather than retried until the timeout (`HTTPClient.shared`
    /// retries a refused connection for 90 s), redirects followed (blob
    /// storage behind a registry), no decompression (blobs are hashed as sent).
    public static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .follow(max: 10, allowCycles: false),
                                                     timeout: .init(connect: .seconds(10)), decompression: .disabled)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// A client.
    /// - Parameters:
    ///   - httpClient: the HTTP client (the registry client never shuts it
    ///     down); ``sharedHTTPClient`` by default. Give one whose
    ///     `connectionPool.retryConnectionEstablishment` is false, or a
    ///     closed port takes its connect timeout to be reported.
    ///   - credentials: where saved credentials are looked up per registry; `nil` for anonymous access only.
    ///   - configuration: upload sizes and the stall timeout.
    ///   - logger: debug lines per blob, a warning for plain HTTP to a non-loopback host.
    public init(httpClient: HTTPClient = RegistryClient.sharedHTTPClient, credentials: RegistryCredentialStore? = nil, configuration: RegistryClientConfiguration = RegistryClientConfiguration(), logger: Logger = Logger(label: "uni.registry")) {
        self.httpClient = httpClient
        self.credentialStore = credentials
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: Login

    /// Checks `credentials` against `registry` (`host[:port]`): GET `/v2/`
    /// through the auth flow the registry asks for.
    /// - Throws: ``UniError``: `unauthenticated` when the registry refuses
    ///   them (401), `permissionDenied` (403), `unavailable` when it cannot be reached.
    public func login(registry: String, credentials: RegistryCredentials, insecure: Bool) async throws {
        let endpoint = try self.endpoint(registry, insecure: insecure)
        let session = RegistrySession(endpoint: endpoint, repository: nil, action: "log in", scopes: [], credentials: credentials)
        try await send(session, .GET, endpoint.baseURL + "/v2/") { response, _ in
            guard response.status.code == 200 else { throw await self.unexpected(response, "GET /v2/", session) }
            _ = try? await response.body.collect(upTo: 1 << 16)
        }
    }

    // MARK: Push

    /// Pushes the stored image `source` (its manifest, config and layers
    /// from `store`) to `destination`, which names a registry. Blobs the
    /// registry has are skipped, blobs another repository of it holds are
    /// mounted, the rest uploaded; the manifest goes last, with the same
    /// bytes (and so the same digest) as in the store.
    /// - Returns: the pushed manifest's digest.
    /// - Throws: ``UniError`` with one line: unreachable, 401/403, a
    ///   destination without a registry, a registry error naming the blob.
    public func push(_ source: StoredImage, from store: ImageStore, to destination: ImageReference, insecure: Bool, progress: @escaping @Sendable (RegistryProgress) -> Void) async throws -> String {
        do {
            return try await pushImage(source, from: store, to: destination, insecure: insecure, progress: progress)
        } catch let error as UniError {
            throw UniError(error.code, "cannot push \(source.reference) to \(destination): \(error.message)", cause: error)
        }
    }

    private func pushImage(_ source: StoredImage, from store: ImageStore, to destination: ImageReference, insecure: Bool, progress: @escaping @Sendable (RegistryProgress) -> Void) async throws -> String {
        guard let registry = destination.registry else {
            throw UniError.invalid("the destination '\(destination)' names no registry: use REGISTRY/REPOSITORY[:TAG], e.g. localhost:5000/\(destination.repository)")
        }
        let manifestData = try store.read(source.digest)
        let manifest = try store.manifest(source.digest)
        let blobs = [manifest.config] + manifest.layers
        if let digest = destination.digest, digest != source.digest {
            throw UniError.invalid("the destination digest \(digest) is not the image's manifest digest \(source.digest)")
        }
        let pin = store.pin([source.digest] + blobs.map(\.digest))
        defer { withExtendedLifetime(pin) {} }
        let endpoint = try self.endpoint(registry, insecure: insecure)
        // Mount candidates: repositories of this registry known to hold each blob.
        var mounts: [String: String] = [:]
        for blob in blobs {
            var candidates = store.knownSources(of: blob.digest)
            if source.reference.registry != nil { candidates.append(source.reference.name) }
            if let from = candidates.lazy.compactMap({ Self.repository(of: $0, on: registry) }).first(where: { $0 != destination.repository }) {
                mounts[blob.digest] = from
            }
        }
        var scopes = ["repository:\(destination.repository):pull,push"]
        for from in Set(mounts.values).sorted() { scopes.append("repository:\(from):pull") }
        let session = RegistrySession(endpoint: endpoint, repository: destination.repository, action: "push", scopes: scopes,
                                      credentials: try credentialStore?.credentials(for: registry))
        for blob in blobs {
            try await pushBlob(blob, from: store, session: session, mountFrom: mounts[blob.digest], progress: progress)
        }
        let reference = destination.tag ?? destination.digest ?? ImageReference.defaultTag
        let mediaType = manifest.mediaType ?? UniMediaType.manifest
        let digest = source.digest
        let url = endpoint.baseURL + "/v2/\(destination.repository)/manifests/\(reference)"
        try await send(session, .PUT, url, headers: ["Content-Type": mediaType],
                       body: { _ in .bytes(ByteBuffer(bytes: manifestData)) }) { response, _ in
            guard response.status.code == 201 else { throw await self.unexpected(response, "the manifest PUT of \(reference)", session) }
            if let answered = response.headers.first(name: "Docker-Content-Digest"), ImageReference.isDigest(answered), answered != digest {
                throw UniError(.unavailable, "registry \(registry) stored the manifest as \(answered), not \(digest)")
            }
            _ = try? await response.body.collect(upTo: 1 << 16)
        }
        store.recordSources(blobs.map(\.digest), repository: "\(registry)/\(destination.repository)")
        progress(.manifest(digest: digest))
        logger.debug("pushed image", metadata: ["image": "\(destination)", "digest": "\(digest)"])
        return digest
    }

    /// `repository` when `name` (`registry/repository`) is on `registry`.
    static func repository(of name: String, on registry: String) -> String? {
        guard let slash = name.firstIndex(of: "/"), name[..<slash].lowercased() == registry.lowercased() else { return nil }
        return String(name[name.index(after: slash)...])
    }

    private func pushBlob(_ blob: OCIDescriptor, from store: ImageStore, session: RegistrySession, mountFrom: String?, progress: @escaping @Sendable (RegistryProgress) -> Void) async throws {
        progress(.started(digest: blob.digest, mediaType: blob.mediaType, size: blob.size))
        let base = session.endpoint.baseURL + "/v2/\(session.repository ?? "")/blobs/"
        let present: Bool = try await send(session, .HEAD, base + blob.digest) { response, _ in
            switch response.status.code {
            case 200: return true
            case 404: return false
            default: throw await self.unexpected(response, "HEAD of blob \(blob.digest)", session)
            }
        }
        if present {
            progress(.skipped(digest: blob.digest, reason: .alreadyPresent))
            return
        }
        var uploadURL = base + "uploads/"
        if let mountFrom { uploadURL += "?mount=\(blob.digest)&from=\(mountFrom)" }
        let started: String? = try await send(session, .POST, uploadURL, body: { _ in .bytes(ByteBuffer()) }) { response, _ in
            _ = try? await response.body.collect(upTo: 1 << 16)
            switch response.status.code {
            case 201 where mountFrom != nil: return nil
            case 202:
                guard let location = response.headers.first(name: "Location") else {
                    throw UniError(.unavailable, "registry \(session.registry) started an upload of blob \(blob.digest) without a Location")
                }
                return location
            default: throw await self.unexpected(response, "the upload POST of blob \(blob.digest)", session)
            }
        }
        guard var location = started.map({ resolveLocation($0, session.endpoint) }) else {
            progress(.skipped(digest: blob.digest, reason: .mounted(from: mountFrom ?? "")))
            return
        }
        let path = store.blobPath(blob.digest)
        let moved = ProgressMeter(digest: blob.digest, total: blob.size, progress: progress)
        do {
            if blob.size > configuration.monolithicUploadLimit {
                var offset: UInt64 = 0
                while offset < blob.size {
                    let length = min(configuration.chunkSize, blob.size - offset)
                    let range = "\(offset)-\(offset + length - 1)"
                    let chunkStart = offset, current = location
                    location = try await send(session, .PATCH, current,
                                              headers: ["Content-Type": "application/octet-stream", "Content-Range": range],
                                              body: Self.fileBody(path, offset: chunkStart, length: length, meter: moved)) { response, _ in
                        _ = try? await response.body.collect(upTo: 1 << 16)
                        guard response.status.code == 202 || response.status.code == 204 else {
                            throw await self.unexpected(response, "the PATCH of bytes \(range) of blob \(blob.digest)", session)
                        }
                        return response.headers.first(name: "Location").map { resolveLocation($0, session.endpoint) } ?? current
                    }
                    offset += length
                }
                try await finishUpload(session, location, blob, body: nil)
            } else {
                try await finishUpload(session, location, blob, body: Self.fileBody(path, offset: 0, length: blob.size, meter: moved))
            }
        } catch {
            // Abandon the upload session; the registry drops its partial data.
            if let failure = error as? UniError, failure.code != .unavailable {
                let abandoned = location
                _ = try? await send(session, .DELETE, abandoned) { response, _ in _ = try? await response.body.collect(upTo: 1 << 16) }
            }
            throw error
        }
        moved.finish()
        progress(.finished(digest: blob.digest))
    }

    /// PUT `location&digest=` (with the whole blob as body, or empty after chunks).
    private func finishUpload(_ session: RegistrySession, _ location: String, _ blob: OCIDescriptor, body: RegistryBodyMaker?) async throws {
        let url = location + (location.contains("?") ? "&" : "?") + "digest=" + blob.digest.replacingOccurrences(of: ":", with: "%3A")
        // AsyncHTTPClient sets Content-Length from the body's known length.
        try await send(session, .PUT, url, headers: ["Content-Type": "application/octet-stream"], body: body ?? { _ in .bytes(ByteBuffer()) }) { response, _ in
            guard response.status.code == 201 else { throw await self.unexpected(response, "the final PUT of blob \(blob.digest)", session) }
            _ = try? await response.body.collect(upTo: 1 << 16)
        }
    }

    /// A body that streams `length` bytes of the file at `offset`.
    static func fileBody(_ path: String, offset: UInt64, length: UInt64, meter: ProgressMeter) -> RegistryBodyMaker {
        { moved in
            .stream(FileRegionSequence(path: path, offset: offset, length: length) { count in
                moved(count)
                meter.add(count)
            }, length: .known(Int64(length)))
        }
    }

    // MARK: Support

    /// The endpoint of `registry`, checked; a warning for plain HTTP off loopback.
    func endpoint(_ registry: String, insecure: Bool) throws -> RegistryEndpoint {
        guard ImageReference.isRegistry(registry) else {
            throw UniError.invalid("invalid registry '\(registry.escapingControlCharacters)': expected HOST or HOST:PORT")
        }
        if insecure, !RegistryEndpoint.isLoopback(registry) {
            logger.warning("using plain HTTP to a registry that is not on loopback: credentials and images travel in clear", metadata: ["registry": "\(registry)"])
        }
        return RegistryEndpoint(registry: registry, insecure: insecure)
    }
}

/// A `Location` made absolute against the registry's base URL.
func resolveLocation(_ location: String, _ endpoint: RegistryEndpoint) -> String {
    if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
    return endpoint.baseURL + (location.hasPrefix("/") ? "" : "/v2/") + location
}

/// Turns byte counts into ``RegistryProgress/advanced(digest:bytes:total:)``
/// events, at most one per MiB and one at the end.
final class ProgressMeter: Sendable {
    private let digest: String
    private let total: UInt64
    private let progress: @Sendable (RegistryProgress) -> Void
    private let state = Mutex<(bytes: UInt64, reported: UInt64)>((0, 0))

    init(digest: String, total: UInt64, progress: @escaping @Sendable (RegistryProgress) -> Void) {
        self.digest = digest
        self.total = total
        self.progress = progress
    }

    func add(_ count: Int) {
        let report: UInt64? = state.withLock { state in
            state.bytes += UInt64(count)
            guard state.bytes - state.reported >= 1 << 20 || state.bytes == total else { return nil }
            state.reported = state.bytes
            return state.bytes
        }
        if let report { progress(.advanced(digest: digest, bytes: report, total: total)) }
    }

    /// Reports the end if the last ``add(_:)`` did not.
    func finish() {
        let report: UInt64? = state.withLock { state in
            guard state.reported != state.bytes || state.bytes == 0 else { return nil }
            state.reported = state.bytes
            return state.bytes
        }
        if let report { progress(.advanced(digest: digest, bytes: report, total: total)) }
    }
}
