import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import RegistryTestSupport
import UniKit

/// An in-process registry for what the real one cannot be made to do:
/// the Bearer token flow (with a realm that checks Basic credentials),
/// blobs whose bytes do not match their digest or that end early, a
/// docker image, a registry that never answers. It serves pulls only:
/// GET/HEAD of manifests and blobs, from what the test put in it.
final class FakeRegistry: Sendable {
    /// How a blob is served.
    enum BlobBehaviour: Sendable {
        /// The stored bytes, as they are.
        case serve
        /// The bytes with one byte changed (the digest no longer matches).
        case tamper
        /// The first half, with a Content-Length that says so.
        case shorten
        /// A Content-Length of the whole blob, then the first half and a closed connection.
        case cut
        /// Never answers.
        case stall
    }

    struct State {
        var port = 0
        var manifests: [String: (data: Data, mediaType: String)] = [:]
        var blobs: [String: Data] = [:]
        var behaviours: [String: BlobBehaviour] = [:]
        /// `Authorization` of each /v2/ request, in order.
        var authorizations: [String?] = []
        /// The query and `Authorization` of each token request.
        var tokenRequests: [(query: String, authorization: String?)] = []
    }

    /// Bearer auth: the token realm's rules.
    struct BearerAuth: Sendable {
        /// Credentials the realm wants as Basic auth; `nil` gives anonymous tokens.
        var credentials: RegistryCredentials?
        /// Answer `{"access_token": ...}` instead of `{"token": ...}`.
        var accessTokenField = false
    }

    static let token = "fake-token-3f9a"
    let state = Mutex(State())
    let bearer: BearerAuth?

    init(bearer: BearerAuth? = nil) {
        self.bearer = bearer
    }

    var registry: String { "127.0.0.1:\(state.withLock { $0.port })" }

    /// Serves `manifest` under `tag` in `repository` (any repository: the fake ignores the name).
    func add(manifest data: Data, mediaType: String = UniMediaType.manifest, tag: String) {
        state.withLock {
            $0.manifests[tag] = (data, mediaType)
            $0.manifests[ImageStore.digest(of: data)] = (data, mediaType)
        }
    }

    func add(blob data: Data, behaviour: BlobBehaviour = .serve) {
        let digest = ImageStore.digest(of: data)
        state.withLock {
            $0.blobs[digest] = data
            $0.behaviours[digest] = behaviour
        }
    }

    /// Copies an image of `store` into the fake; `layerBehaviour` applies to its last layer.
    func add(image: StoredImage, from store: ImageStore, tag: String, layerBehaviour: BlobBehaviour = .serve) throws {
        let manifest = try store.manifest(image.digest)
        add(manifest: try store.read(image.digest), tag: tag)
        add(blob: try store.read(manifest.config.digest))
        for (index, layer) in manifest.layers.enumerated() {
            add(blob: try Data(contentsOf: URL(fileURLWithPath: store.blobPath(layer.digest))), behaviour: index == manifest.layers.count - 1 ? layerBehaviour : .serve)
        }
    }

    private func challenge(_ path: String) -> String {
        let parts = path.split(separator: "/")
        let scope = parts.count > 3 ? "repository:\(parts[1..<(parts.count - 2)].joined(separator: "/")):pull" : nil
        return "Bearer realm=\"http://\(registry)/token\",service=\"fake-registry\"" + (scope.map { ",scope=\"\($0)\"" } ?? "")
    }

    private func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("token") { request, _ -> Response in
            let authorization = request.headers[.authorization]
            self.state.withLock { $0.tokenRequests.append((request.uri.query ?? "", authorization)) }
            if let wanted = self.bearer?.credentials {
                let expected = "Basic " + Data("\(wanted.username):\(wanted.password)".utf8).base64EncodedString()
                guard authorization == expected else {
                    return Response(status: .unauthorized, body: .init(byteBuffer: ByteBuffer(string: #"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#)))
                }
            }
            let field = self.bearer?.accessTokenField == true ? "access_token" : "token"
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: "{\"\(field)\":\"\(FakeRegistry.token)\",\"expires_in\":300}")))
        }
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            let path = request.uri.path
            let authorization = request.headers[.authorization]
            self.state.withLock { $0.authorizations.append(authorization) }
            if self.bearer != nil, authorization != "Bearer " + FakeRegistry.token {
                var headers = HTTPFields()
                headers[.wwwAuthenticate] = self.challenge(path)
                return Response(status: .unauthorized, headers: headers)
            }
            let parts = path.split(separator: "/").map(String.init)
            if parts == ["v2"] { return Response(status: .ok) }
            guard parts.count >= 4, let reference = parts.last else { return Response(status: .notFound) }
            let head = request.method == .head
            if parts[parts.count - 2] == "manifests" {
                guard let manifest = self.state.withLock({ $0.manifests[reference] }) else {
                    return Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: #"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#)))
                }
                var headers = HTTPFields()
                headers[.contentType] = manifest.mediaType
                headers[.contentLength] = String(manifest.data.count)
                headers[HTTPField.Name("Docker-Content-Digest")!] = ImageStore.digest(of: manifest.data)
                return Response(status: .ok, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(bytes: manifest.data)))
            }
            guard parts[parts.count - 2] == "blobs", let (data, behaviour) = self.state.withLock({ state in state.blobs[reference].map { ($0, state.behaviours[reference] ?? .serve) } }) else {
                return Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: #"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#)))
            }
            switch behaviour {
            case .serve:
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: data)))
            case .tamper:
                var changed = data
                changed[changed.count / 2] ^= 0xFF
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: changed)))
            case .shorten:
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: data.prefix(data.count / 2))))
            case .cut:
                struct Cut: Error {}
                return Response(status: .ok, body: ResponseBody(contentLength: data.count) { writer in
                    try await writer.write(ByteBuffer(bytes: data.prefix(data.count / 2)))
                    throw Cut()
                })
            case .stall:
                try await Task.sleep(for: .seconds(3600))
                return Response(status: .ok)
            }
        }
        router.get("v2/**", use: handler)
        router.head("v2/**", use: handler)
        router.get("v2", use: handler)
        return router
    }

    /// Runs the fake on an ephemeral 127.0.0.1 port for the length of `body`.
    func run<T: Sendable>(_ body: @escaping @Sendable (FakeRegistry) async throws -> T) async throws -> T {
        let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "fake-registry")
        logger.logLevel = .critical
        let app = Application(router: router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { readyContinuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await app.runService(gracefulShutdownSignals: [])
                return nil
            }
            for await port in ready {
                state.withLock { $0.port = port }
                break
            }
            defer { group.cancelAll() }
            let result = try await body(self)
            return result
        }
    }
}
