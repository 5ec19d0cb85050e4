import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One registry as the client talks to it: `host[:port]` and the scheme.
struct RegistryEndpoint: Sendable {
    /// `host[:port]` as in the image reference.
    let registry: String
    /// Plain HTTP.
    let insecure: Bool

    var baseURL: String { (insecure ? "http://" : "https://") + registry }
    /// `host:port` with the scheme's default port spelled out, for messages.
    var hostAndPort: String { registry.contains(":") ? registry : registry + (insecure ? ":80" : ":443") }

    /// Whether `host` is a loopback name or address.
    static func isLoopback(_ registry: String) -> Bool {
        let host = registry.split(separator: ":").first.map(String.init)?.lowercased() ?? ""
        return host == "localhost" || host.hasPrefix("127.") || host == "::1"
    }
}

/// What one push, pull or login asks of a registry: who, where, and the
/// token scopes its requests need.
struct RegistrySession: Sendable {
    let endpoint: RegistryEndpoint
    /// The repository acted on (messages), `nil` for a login.
    let repository: String?
    /// `pull` or `push` (messages).
    let action: String
    /// Bearer scopes (`repository:NAME:pull,push`), sent to the token realm
    /// along with the challenge's own.
    let scopes: [String]
    let credentials: RegistryCredentials?

    var registry: String { endpoint.registry }
    var cacheKey: String { registry.lowercased() + " " + (credentials?.username ?? "") + " " + scopes.sorted().joined(separator: " ") }
}

/// Notes that bytes moved; a transfer whose watchdog is not fed for the
/// stall timeout is cancelled.
final class TransferWatchdog: Sendable {
    private let last = Atomic<UInt64>(TransferWatchdog.now())

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Bytes moved, or an answer arrived.
    func feed() { last.store(Self.now(), ordering: .relaxed) }

    var idleNanoseconds: UInt64 { Self.now() &- last.load(ordering: .relaxed) }
}

/// Builds a request body, feeding the watchdog as bytes are read.
typealias RegistryBodyMaker = @Sendable (_ moved: @escaping @Sendable (Int) -> Void) -> HTTPClientRequest.Body

/// The registry's JSON error body: `{"errors":[{"code":"...","message":"..."}]}`.
struct RegistryErrorBody: Decodable {
    struct Entry: Decodable {
        var code: String?
        var message: String?
    }
    var errors: [Entry]?

    /// `CODE: message` of the first error, if the body has one.
    static func summary(_ body: ByteBuffer?) -> String? {
        guard let body, body.readableBytes > 0,
              let decoded = try? JSONDecoder().decode(RegistryErrorBody.self, from: Data(body.readableBytesView)),
              let first = decoded.errors?.first else { return nil }
        let text = [first.code, first.message].compactMap { $0 }.joined(separator: ": ")
        return text.isEmpty ? nil : String(text.prefix(300)).escapingControlCharacters
    }
}

extension RegistryClient {
    private enum Attempt<T: Sendable>: Sendable {
        case done(T)
        case unauthorized([RegistryAuthChallenge])
    }

    /// Sends one request to the registry with the session's authorization,
    /// answering a 401 once by running the challenge's auth flow (Basic, or
    /// a Bearer token from the realm) and sending the request again.
    /// `handle` reads the answer (any status but 401 and 403, which become
    /// errors here) inside the stall watchdog.
    func send<T: Sendable>(
        _ session: RegistrySession,
        _ method: RegistryMethod,
        _ url: String,
        headers: KeyValuePairs<String, String> = [:],
        body: RegistryBodyMaker? = nil,
        handle: @escaping @Sendable (HTTPClientResponse, TransferWatchdog) async throws -> T
    ) async throws -> T {
        var authorization = authorizations.withLock { $0[session.cacheKey] }
        for attempt in 0..<2 {
            let sent = authorization
            let outcome: Attempt<T> = try await watched(session.endpoint) { watchdog in
                var request = HTTPClientRequest(url: url)
                request.method = .init(rawValue: method.rawValue)
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                if let sent { request.headers.replaceOrAdd(name: "Authorization", value: sent) }
                if let body { request.body = body { _ in watchdog.feed() } }
                let response = try await self.execute(request, session.endpoint)
                watchdog.feed()
                switch response.status.code {
                case 401:
                    let challenges = response.headers["WWW-Authenticate"].flatMap(RegistryAuthChallenge.parse)
                    _ = try? await response.body.collect(upTo: 1 << 16)
                    if attempt == 0, !challenges.isEmpty { return .unauthorized(challenges) }
                    throw self.unauthorizedError(session)
                case 403:
                    let summary = RegistryErrorBody.summary(try? await response.body.collect(upTo: 1 << 16))
                    throw self.forbiddenError(session, summary)
                default:
                    return .done(try await handle(response, watchdog))
                }
            }
            switch outcome {
            case .done(let value):
                return value
            case .unauthorized(let challenges):
                authorization = try await authenticate(session, challenges)
                let fresh = authorization
                authorizations.withLock { $0[session.cacheKey] = fresh }
            }
        }
        throw unauthorizedError(session)
    }

    /// The `Authorization` value that answers `challenges`: Basic with the
    /// session's credentials, or a Bearer token fetched from the realm
    /// (with the credentials as Basic auth when there are any, anonymous otherwise).
    private func authenticate(_ session: RegistrySession, _ challenges: [RegistryAuthChallenge]) async throws -> String {
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }) {
            return try await fetchToken(session, bearer)
        }
        guard challenges.contains(where: { $0.scheme == "basic" }) else {
            throw UniError(.unavailable, "registry \(session.registry) asks for an unsupported authentication scheme (\(challenges.map(\.scheme).joined(separator: ", "))): Uni speaks Basic and Bearer")
        }
        guard let credentials = session.credentials else { throw unauthorizedError(session) }
        return credentials.basicAuthorization
    }

    private struct TokenAnswer: Decodable {
        var token: String?
        var access_token: String?
    }

    /// GET realm?service=...&scope=... (OCI distribution token auth).
    private func fetchToken(_ session: RegistrySession, _ challenge: RegistryAuthChallenge) async throws -> String {
        guard let realm = challenge.parameters["realm"], var components = URLComponents(string: realm),
              let scheme = components.scheme?.lowercased(), scheme == "https" || scheme == "http", let host = components.host else {
            throw UniError(.unavailable, "registry \(session.registry) sent a Bearer challenge without a usable realm URL ('\((challenge.parameters["realm"] ?? "").escapingControlCharacters)')")
        }
        if scheme == "http", !session.endpoint.insecure, !RegistryEndpoint.isLoopback(host) {
            throw UniError(.unavailable, "registry \(session.registry) sends its token requests to the plain-HTTP realm \(realm.escapingControlCharacters): refusing to send credentials in clear without --insecure")
        }
        var query = components.queryItems ?? []
        if let service = challenge.parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
        var scopes: [String] = []
        for scope in (challenge.parameters["scope"].map { $0.split(separator: " ").map(String.init) } ?? []) + session.scopes where !scopes.contains(scope) {
            scopes.append(scope)
        }
        query += scopes.map { URLQueryItem(name: "scope", value: $0) }
        components.queryItems = query.isEmpty ? nil : query
        // '+' is literal in URLComponents' query but a space to most servers.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        guard let url = components.string else { throw UniError(.internalError, "cannot build the token URL from realm \(realm.escapingControlCharacters)") }
        let realmEndpoint = RegistryEndpoint(registry: host + (components.port.map { ":\($0)" } ?? ""), insecure: scheme == "http")
        let credentials = session.credentials
        return try await watched(realmEndpoint) { watchdog in
            var request = HTTPClientRequest(url: url)
            if let credentials { request.headers.add(name: "Authorization", value: credentials.basicAuthorization) }
            let response = try await self.execute(request, realmEndpoint)
            watchdog.feed()
            let body = try? await response.body.collect(upTo: 1 << 20)
            switch response.status.code {
            case 200:
                guard let body, let answer = try? JSONDecoder().decode(TokenAnswer.self, from: Data(body.readableBytesView)),
                      let token = answer.token ?? answer.access_token, !token.isEmpty else {
                    throw UniError(.unavailable, "the token service of registry \(session.registry) (\(realm.escapingControlCharacters)) answered without a token")
                }
                return "Bearer " + token
            case 401, 403:
                throw self.unauthorizedError(session)
            default:
                throw UniError(.unavailable, "the token service of registry \(session.registry) (\(realm.escapingControlCharacters)) answered \(response.status.code)\(RegistryErrorBody.summary(body).map { " (\($0))" } ?? "")")
            }
        }
    }

    /// 401 after the auth flow: no credentials, or wrong ones.
    func unauthorizedError(_ session: RegistrySession) -> UniError {
        let what = session.repository.map { " to \(session.action) \($0)" } ?? ""
        if let credentials = session.credentials {
            return UniError(.unauthenticated, "registry \(session.registry) rejected the credentials of '\(credentials.username.escapingControlCharacters)'\(what) (401): check them with `uni login \(session.registry)`")
        }
        return UniError(.unauthenticated, "registry \(session.registry) requires authentication\(what) (401): run `uni login \(session.registry)`")
    }

    /// 403: authenticated, but this repository is not allowed.
    func forbiddenError(_ session: RegistrySession, _ summary: String?) -> UniError {
        let who = session.credentials.map { "'\($0.username.escapingControlCharacters)'" } ?? "anonymous users"
        let what = session.repository.map { "\(session.action) access to \($0)" } ?? "access"
        return UniError(.permissionDenied, "registry \(session.registry) denied \(what) for \(who) (403\(summary.map { ": \($0)" } ?? ""))")
    }

    /// An answer the protocol does not expect, with the registry's own error text.
    func unexpected(_ response: HTTPClientResponse, _ doing: String, _ session: RegistrySession) async -> UniError {
        let summary = RegistryErrorBody.summary(try? await response.body.collect(upTo: 1 << 16))
        return UniError(.unavailable, "registry \(session.registry) answered \(response.status.code) \(response.status.reasonPhrase) to \(doing)\(summary.map { " (\($0))" } ?? "")")
    }

    /// Runs `operation` with a watchdog that cancels it when no byte moves
    /// for ``RegistryClientConfiguration/stallTimeout`` (connecting included).
    func watched<T: Sendable>(_ endpoint: RegistryEndpoint, _ operation: @escaping @Sendable (TransferWatchdog) async throws -> T) async throws -> T {
        let watchdog = TransferWatchdog()
        let limit = configuration.stallTimeout
        let limitNanoseconds = UInt64(limit.components.seconds) * 1_000_000_000 + UInt64(limit.components.attoseconds / 1_000_000_000)
        let interval = min(limit / 4, .milliseconds(500))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation(watchdog) }
            group.addTask {
                while true {
                    try await Task.sleep(for: interval)
                    if watchdog.idleNanoseconds >= limitNanoseconds {
                        throw UniError(.unavailable, "registry \(endpoint.hostAndPort) stalled: nothing received or sent for \(RegistryClient.describe(limit)) (stall timeout)")
                    }
                }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
            }
            throw CancellationError()
        }
    }

    /// `httpClient.execute`, with connection failures as one clear line.
    func execute(_ request: HTTPClientRequest, _ endpoint: RegistryEndpoint) async throws -> HTTPClientResponse {
        do {
            return try await httpClient.execute(request, timeout: .hours(24), logger: logger)
        } catch let error as UniError {
            throw error
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw Self.unreachable(endpoint, error)
        }
    }

    /// `30 s`, `0.5 s`.
    static func describe(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
    }

    /// `cannot reach registry HOST:PORT: REASON`, with a hint about
    /// `--insecure` when TLS failed against what may be a plain-HTTP registry.
    static func unreachable(_ endpoint: RegistryEndpoint, _ error: any Error) -> UniError {
        var reason = String(describing: error)
        if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first {
            reason = (first.error as? IOError).map { String(cString: strerror($0.errnoCode)).lowercased() } ?? String(describing: first.error)
        } else if let io = error as? IOError {
            reason = String(cString: strerror(io.errnoCode)).lowercased()
        } else if let client = error as? HTTPClientError, client == .connectTimeout {
            reason = "connect timeout"
        }
        let tls = !endpoint.insecure && ["ssl", "tls", "handshake", "certificate"].contains { reason.lowercased().contains($0) }
        let hint = tls ? " (TLS failed: if it serves plain HTTP on loopback or a dev network, pass --insecure)" : ""
        return UniError(.unavailable, "cannot reach registry \(endpoint.hostAndPort): \(String(reason.prefix(300)).escapingControlCharacters)\(hint)", cause: error)
    }
}

/// The HTTP methods the registry client sends (kept apart from NIO's HTTP
/// types: UniKit holds no HTTP server module).
enum RegistryMethod: String, Sendable {
    case GET, HEAD, PUT, POST, PATCH, DELETE
}
