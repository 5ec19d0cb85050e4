import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import UniKit

/// A typed client for the daemon's API over `<data-dir>/unid.sock`.
///
/// Errors come back as the daemon's ``UniError`` (same code and message);
/// a daemon that cannot be reached gives `unavailable` with
/// "cannot reach unid at <socket>: start it with `unid`".
public struct UniClient: Sendable {
    /// The daemon's socket.
    public let socketPath: String
    private let httpClient: HTTPClient
    /// Extra headers sent with every request (trace context).
    public var headers: [(String, String)] = []

    /// The process-wide client for the local socket: it fails at once when
    /// the daemon is not there (no connection retries until a deadline).
    public static let localHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// A client for the daemon listening on `socketPath`.
    public init(socketPath: String, httpClient: HTTPClient = UniClient.localHTTPClient) {
        self.socketPath = socketPath
        self.httpClient = httpClient
    }

    /// `GET /v1/info`.
    public func info() async throws -> DaemonInfo { try await call(.GET, "/v1/info") }

    /// `GET /v1/vms`: running VMs, or all with `all`.
    public func list(all: Bool = false) async throws -> [VM] { try await call(.GET, "/v1/vms" + (all ? "?all=true" : "")) }

    /// `POST /v1/vms`: creates a VM, and starts it unless `start` is false.
    public func create(_ config: VMConfig, start: Bool = true) async throws -> VM {
        try await call(.POST, "/v1/vms?start=\(start)", body: try JSONCoding.makeEncoder().encode(config))
    }

    /// `POST /v1/vms?attach=true`: creates and starts a VM and streams its
    /// console from the first byte. Returns the VM's id and the stream once
    /// the VM is created; after the stream ends, ``wait(_:)`` gives the outcome.
    public func createAttached(_ config: VMConfig) async throws -> (id: String, console: HTTPClientResponse.Body) {
        let response = try await send(.POST, "/v1/vms?attach=true", body: try JSONCoding.makeEncoder().encode(config))
        guard response.status.code < 300 else { throw try await decodeError(response) }
        guard let id = response.headers.first(name: "X-Uni-VM-ID") else {
            throw UniError(.internalError, "unid's attach answer has no X-Uni-VM-ID header")
        }
        return (id, response.body)
    }

    /// `GET /v1/vms/{ref}`.
    public func inspect(_ reference: String) async throws -> VM { try await call(.GET, path(reference)) }

    /// `POST /v1/vms/{ref}/start`.
    public func start(_ reference: String) async throws -> VM { try await call(.POST, path(reference, "start")) }

    /// `POST /v1/vms/{ref}/stop`, with an optional timeout.
    public func stop(_ reference: String, timeout: Duration? = nil) async throws -> VM {
        let query = timeout.map { "?timeout=\(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)s" } ?? ""
        return try await call(.POST, path(reference, "stop") + query)
    }

    /// `POST /v1/vms/{ref}/kill`.
    public func kill(_ reference: String) async throws -> VM { try await call(.POST, path(reference, "kill")) }

    /// `POST /v1/vms/{ref}/wait`: the final record once the VM has stopped.
    public func wait(_ reference: String) async throws -> VM { try await call(.POST, path(reference, "wait")) }

    /// `DELETE /v1/vms/{ref}`.
    public func remove(_ reference: String, force: Bool = false) async throws {
        let _: Empty = try await call(.DELETE, path(reference) + (force ? "?force=true" : ""))
    }

    /// `GET /v1/vms/{ref}/logs`: console bytes as they arrive. Returns once
    /// the response head is in (with `follow`, the daemon is then subscribed).
    public func logs(_ reference: String, tail: Int? = nil, follow: Bool = false) async throws -> HTTPClientResponse.Body {
        var query: [String] = []
        if let tail { query.append("tail=\(tail)") }
        if follow { query.append("follow=true") }
        let response = try await send(.GET, path(reference, "logs") + (query.isEmpty ? "" : "?" + query.joined(separator: "&")), body: nil)
        guard response.status.code < 300 else { throw try await decodeError(response) }
        return response.body
    }

    private struct Empty: Decodable {}

    private func path(_ reference: String, _ action: String? = nil) -> String {
        let encoded = reference.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? reference
        return "/v1/vms/\(encoded)" + (action.map { "/\($0)" } ?? "")
    }

    private func call<Result: Decodable>(_ method: HTTPMethod, _ path: String, body: Data? = nil) async throws -> Result {
        let response = try await send(method, path, body: body)
        let bytes = try await response.body.collect(upTo: 64 << 20)
        guard response.status.code < 300 else { throw UniClient.error(from: bytes, status: response.status) }
        if Result.self == Empty.self, let empty = Empty() as? Result { return empty }
        do {
            return try JSONCoding.makeDecoder().decode(Result.self, from: Data(buffer: bytes))
        } catch {
            throw UniError(.internalError, "unid sent a response this client cannot read (\(method) \(path)): \(error)")
        }
    }

    private func send(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> HTTPClientResponse {
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: path) else {
            throw UniError.invalid("socket path '\(socketPath)' cannot be used in a URL")
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        // The W3C trace context (`traceparent`) is injected by async-http-client
        // itself, from the current ServiceContext, under its own client span.
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            return try await httpClient.execute(request, timeout: .hours(24 * 365))
        } catch {
            let reason = FileManager.default.fileExists(atPath: socketPath) ? " (\(error))" : ""
            throw UniError(.unavailable, "cannot reach unid at \(socketPath)\(reason): start it with `unid`")
        }
    }

    private func decodeError(_ response: HTTPClientResponse) async throws -> UniError {
        UniClient.error(from: try await response.body.collect(upTo: 1 << 20), status: response.status)
    }

    static func error(from bytes: ByteBuffer, status: HTTPResponseStatus) -> UniError {
        if let body = try? JSONDecoder().decode(APIErrorBody.self, from: Data(buffer: bytes)) {
            return UniError(UniError.Code(name: body.code) ?? .internalError, body.error)
        }
        return UniError(.internalError, "unid answered \(status.code) \(status.reasonPhrase)")
    }
}
