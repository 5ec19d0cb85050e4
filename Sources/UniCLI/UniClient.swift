#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import UniCore
import Instrumentation
import Synchronization
import Tracing

/// A typed client for the daemon's API over `<data-dir>/unid.sock`.
///
/// Errors come back as the daemon's ``UniError`` (same code and message);
/// a daemon that cannot be reached gives `unavailable` with
/// "cannot reach unid at <socket>: start it with `unid`".
///
/// Each call is one HTTP/1.1 exchange on its own connection, run on its own
/// thread with blocking POSIX I/O: no event loop to start (the CLI's start-up
/// is on the path of every command) and no blocking of Swift's cooperative
/// pool. When a tracer is bootstrapped, each call is a client span whose
/// W3C context (`traceparent`) the daemon continues.
public struct UniClient: Sendable {
    /// The daemon's socket.
    public let socketPath: String
    /// Extra headers sent with every request.
    public var headers: [(String, String)] = []

    /// A client for the daemon listening on `socketPath`.
    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// A console stream: byte chunks as the daemon sends them.
    public typealias ByteStream = AsyncThrowingStream<[UInt8], any Error>

    /// `GET /v1/info`.
    public func info() async throws -> DaemonInfo { try await call("GET", "/v1/info") }

    /// `GET /v1/vms`: running VMs, or all with `all`.
    public func list(all: Bool = false) async throws -> [VM] { try await call("GET", "/v1/vms" + (all ? "?all=true" : "")) }

    /// `POST /v1/vms`: creates a VM, and starts it unless `start` is false.
    public func create(_ config: VMConfig, start: Bool = true) async throws -> VM {
        try await call("POST", "/v1/vms?start=\(start)", body: try JSONCoding.makeEncoder().encode(config))
    }

    /// `POST /v1/vms?attach=true`: creates and starts a VM and streams its
    /// console from the first byte. Returns the VM's id and the stream once
    /// the VM is created; after the stream ends, ``wait(_:)`` gives the outcome.
    public func createAttached(_ config: VMConfig) async throws -> (id: String, console: ByteStream) {
        let (head, console) = try await stream("POST", "/v1/vms?attach=true", body: try JSONCoding.makeEncoder().encode(config))
        guard let id = head.headers["x-uni-vm-id"] else {
            throw UniError(.internalError, "unid's attach answer has no X-Uni-VM-ID header")
        }
        return (id, console)
    }

    /// `GET /v1/vms/{ref}`.
    public func inspect(_ reference: String) async throws -> VM { try await call("GET", path(reference)) }

    /// `POST /v1/vms/{ref}/start`.
    public func start(_ reference: String) async throws -> VM { try await call("POST", path(reference, "start")) }

    /// `POST /v1/vms/{ref}/stop`, with an optional timeout.
    public func stop(_ reference: String, timeout: Duration? = nil) async throws -> VM {
        let query = timeout.map { "?timeout=\(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)s" } ?? ""
        return try await call("POST", path(reference, "stop") + query)
    }

    /// `POST /v1/vms/{ref}/kill`.
    public func kill(_ reference: String) async throws -> VM { try await call("POST", path(reference, "kill")) }

    /// `POST /v1/vms/{ref}/wait`: the final record once the VM has stopped.
    public func wait(_ reference: String) async throws -> VM { try await call("POST", path(reference, "wait")) }

    /// `DELETE /v1/vms/{ref}`.
    public func remove(_ reference: String, force: Bool = false) async throws {
        let _: Empty = try await call("DELETE", path(reference) + (force ? "?force=true" : ""))
    }

    /// `GET /v1/vms/{ref}/logs`: console bytes as they arrive. Returns once
    /// the response head is in (with `follow`, the daemon is then subscribed).
    public func logs(_ reference: String, tail: Int? = nil, follow: Bool = false) async throws -> ByteStream {
        var query: [String] = []
        if let tail { query.append("tail=\(tail)") }
        if follow { query.append("follow=true") }
        return try await stream("GET", path(reference, "logs") + (query.isEmpty ? "" : "?" + query.joined(separator: "&")), body: nil).body
    }

    /// The error for a daemon that cannot be reached.
    static func unreachable(_ socketPath: String, _ code: Int32) -> UniError {
        let reason = (code == ENOENT || code == ECONNREFUSED) ? "" : " (\(String(cString: strerror(code))))"
        return UniError(.unavailable, "cannot reach unid at \(socketPath)\(reason): start it with `unid`")
    }

    private struct Empty: Decodable {}

    /// The largest JSON answer read (a list of 10,000 records is ~10 MiB).
    private static let maximumBodyBytes = 64 << 20

    private func path(_ reference: String, _ action: String? = nil) -> String {
        "/v1/vms/\(Self.percentEncoded(reference))" + (action.map { "/\($0)" } ?? "")
    }

    /// Encodes everything but RFC 3986's unreserved characters.
    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return result
    }

    private func call<Result: Decodable>(_ method: String, _ target: String, body: Data? = nil) async throws -> Result {
        let (head, bytes) = try await traced(method, target) { headers in
            try await Self.onOwnThread {
                let connection = try UnixHTTPConnection(socketPath: socketPath)
                try connection.send(method: method, target: target, headers: headers, body: body.map(Array.init))
                let head = try connection.readHead()
                return (head, try connection.readBody(limit: Self.maximumBodyBytes))
            }
        }
        guard head.status < 300 else { throw Self.error(from: bytes, head: head) }
        if Result.self == Empty.self, let empty = Empty() as? Result { return empty }
        do {
            return try JSONCoding.makeDecoder().decode(Result.self, from: Data(bytes))
        } catch {
            throw UniError(.internalError, "unid sent a response this client cannot read (\(method) \(target)): \(error)")
        }
    }

    /// Sends a request whose answer streams: returns at the head, then a
    /// thread of its own reads the body into the stream. Ending the
    /// consumer's iteration closes the connection.
    private func stream(_ method: String, _ target: String, body: Data?) async throws -> (head: HTTPResponseHead, body: ByteStream) {
        let (head, connection) = try await traced(method, target) { headers in
            try await Self.onOwnThread {
                let connection = try UnixHTTPConnection(socketPath: socketPath)
                try connection.send(method: method, target: target, headers: headers, body: body.map(Array.init))
                return (try connection.readHead(), SendableConnection(connection))
            }
        }
        guard head.status < 300 else {
            let bytes = try await Self.onOwnThread { try connection.value.readBody(limit: 1 << 20) }
            throw Self.error(from: bytes, head: head)
        }
        let (stream, continuation) = ByteStream.makeStream()
        continuation.onTermination = { _ in connection.value.shutdownNow() }
        startThread {
            do {
                while let chunk = try connection.value.readBodyChunk() { continuation.yield(chunk) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return (head, stream)
    }

    /// Runs `exchange` in a client span (when a tracer is bootstrapped) with
    /// the span's context injected into the request headers.
    private func traced<T>(_ method: String, _ target: String, _ exchange: ([(String, String)]) async throws -> (HTTPResponseHead, T)) async throws -> (HTTPResponseHead, T) {
        try await withSpan(method, ofKind: .client) { span in
            span.attributes["http.request.method"] = method
            span.attributes["url.path"] = String(target.prefix { $0 != "?" })
            span.attributes["network.transport"] = "unix"
            var headers = self.headers
            InstrumentationSystem.instrument.inject(span.context, into: &headers, using: HeaderInjector())
            let result = try await exchange(headers)
            span.attributes["http.response.status_code"] = result.0.status
            if result.0.status >= 400 { span.setStatus(SpanStatus(code: .error)) }
            return result
        }
    }

    static func error(from bytes: [UInt8], head: HTTPResponseHead) -> UniError {
        if let body = try? JSONDecoder().decode(APIErrorBody.self, from: Data(bytes)) {
            return UniError(UniError.Code(name: body.code) ?? .internalError, body.error)
        }
        return UniError(.internalError, "unid answered \(head.status) \(head.reason)")
    }

    /// Runs blocking I/O on a new thread and resumes with its result.
    private static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            startThread { continuation.resume(with: Result { try body() }) }
        }
    }
}

/// A connection handed between the thread that opens it and the one that
/// reads its body: only one of them uses it at a time, and `shutdownNow`
/// (from a cancelled consumer) is safe at any time.
private struct SendableConnection: @unchecked Sendable {
    let value: UnixHTTPConnection
    init(_ value: UnixHTTPConnection) { self.value = value }
}

private struct HeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) {
        carrier.append((key, value))
    }
}
