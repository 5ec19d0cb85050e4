#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Instrumentation
import Synchronization
import Tracing
import UniCore
#if canImport(Glibc)
import Glibc
#endif

/// A typed client for the daemon's API over `<data-dir>/unid.sock`.
///
/// Errors come back as the daemon's ``UniError`` (same code and message);
/// a daemon that cannot be reached gives `unavailable` with
/// "cannot reach unid at <socket>: start it with `unid`".
///
/// Every call is one HTTP/1.1 exchange on its own connection with blocking
/// POSIX I/O, in two flavours with the same names: the synchronous methods
/// block the calling thread (the `uni` CLI: one short-lived task, no event
/// loop or thread to start, docs/performance.md), and the `async` ones run
/// the same exchange on a thread of their own, so they never block Swift's
/// cooperative pool (embedders, tests). When a tracer is bootstrapped, each
/// call is a client span whose W3C context (`traceparent`) the daemon continues.
public struct UniClient: Sendable {
    /// The daemon's socket.
    public let socketPath: String
    /// Extra headers sent with every request.
    public var headers: [(String, String)] = []
    /// How long a quick call (list, inspect, info, ...) may wait for the
    /// daemon, connect included. Calls that run long on purpose get more
    /// (``Wait``); streams the caller asked for (`logs -f`, an attached
    /// console, `events`, `wait`) get no limit once their head arrived.
    public var requestTimeout: Duration

    /// The default ``requestTimeout``: 30 s, or `UNI_API_TIMEOUT` seconds.
    public static func defaultRequestTimeout(environment: EnvironmentLookup = .process) -> Duration {
        if let text = environment["UNI_API_TIMEOUT"], let seconds = Double(text), seconds > 0 { return .milliseconds(Int64(seconds * 1000)) }
        return .seconds(30)
    }

    /// A client for the daemon listening on `socketPath`.
    public init(socketPath: String, requestTimeout: Duration = UniClient.defaultRequestTimeout()) {
        self.socketPath = socketPath
        self.requestTimeout = requestTimeout
    }

    /// How long a call may wait for its answer.
    enum Wait {
        /// ``requestTimeout``.
        case quick
        /// ``requestTimeout`` plus this: operations that wait on a guest or QEMU (start, stop, kill, rm, run).
        case longer(Duration)
        /// No limit: the call waits for something the caller asked to wait for (`wait`).
        case unbounded
    }

    func timeout(_ wait: Wait) -> Duration? {
        switch wait {
        case .quick: return requestTimeout
        case .longer(let extra): return requestTimeout + extra
        case .unbounded: return nil
        }
    }

    /// `GET /v1/info`.
    public func info() throws -> DaemonInfo { try call("GET", "/v1/info") }

    /// `GET /v1/vms`: running VMs, or all with `all`.
    public func list(all: Bool = false) throws -> [VM] { try call("GET", "/v1/vms" + (all ? "?all=true" : "")) }

    /// `GET /v1/records/unreadable`: the VM records the daemon could not
    /// read at its start (left on disk as they are).
    public func unreadableRecords() throws -> [UnreadableRecord] { try call("GET", "/v1/records/unreadable") }

    /// `POST /v1/vms`: creates a VM, and starts it unless `start` is false.
    public func create(_ config: VMConfig, start: Bool = true) throws -> VM {
        // A start waits for QEMU (30 s at most), a reference from a registry for its pull.
        try call("POST", "/v1/vms?start=\(start)", body: try JSONCoding.makeEncoder().encode(config),
                 wait: config.imageReference?.registry != nil ? .unbounded : .longer(.seconds(60)))
    }

    /// `POST /v1/vms?attach=true`: creates and starts a VM and streams its
    /// console from the first byte. Returns the VM's id and the console once
    /// the VM is created; after the console ends, ``wait(_:)`` gives the outcome.
    public func createAttached(_ config: VMConfig) throws -> (id: String, console: ConsoleReader) {
        let (head, console) = try stream("POST", "/v1/vms?attach=true", body: try JSONCoding.makeEncoder().encode(config),
                                         wait: config.imageReference?.registry != nil ? .unbounded : .longer(.seconds(60)))
        guard let id = head.headers["x-uni-vm-id"] else {
            console.close()
            throw UniError(.internalError, "unid's attach answer has no X-Uni-VM-ID header")
        }
        return (id, console)
    }

    /// `GET /v1/vms/{ref}`.
    public func inspect(_ reference: String) throws -> VM { try call("GET", try path(reference)) }

    /// `POST /v1/vms/{ref}/start`.
    public func start(_ reference: String) throws -> VM { try call("POST", try path(reference, "start"), wait: .longer(.seconds(60))) }

    /// `POST /v1/vms/{ref}/stop`, with an optional timeout.
    public func stop(_ reference: String, timeout: Duration? = nil) throws -> VM {
        let query = timeout.map { "?timeout=\(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)s" } ?? ""
        // unid's own --stop-timeout is not known here: up to 5 minutes without one.
        return try call("POST", try path(reference, "stop") + query, wait: .longer(timeout ?? .seconds(300)))
    }

    /// `POST /v1/vms/{ref}/kill`.
    public func kill(_ reference: String) throws -> VM { try call("POST", try path(reference, "kill"), wait: .longer(.seconds(30))) }

    /// `POST /v1/vms/{ref}/update`: new limits, live and for the next start.
    public func update(_ reference: String, _ update: ResourceUpdate) throws -> VM {
        try call("POST", try path(reference, "update"), body: try JSONCoding.makeEncoder().encode(update), wait: .longer(.seconds(30)))
    }

    /// `GET /v1/vms/{ref}/stats`: the current sample and the recent ones.
    public func stats(_ reference: String) throws -> VMStatsHistory { try call("GET", try path(reference, "stats")) }

    /// `GET /v1/stats`: the current sample of every running VM.
    public func stats() throws -> [VMStats] { try call("GET", "/v1/stats") }

    /// `POST /v1/vms/{ref}/wait`: the final record once the VM has stopped.
    public func wait(_ reference: String) throws -> VM { try call("POST", try path(reference, "wait"), wait: .unbounded) }

    /// `DELETE /v1/vms/{ref}`.
    public func remove(_ reference: String, force: Bool = false) throws {
        let _: Empty = try call("DELETE", try path(reference) + (force ? "?force=true" : ""), wait: .longer(.seconds(30)))
    }

    /// `GET /v1/vms/{ref}/logs`: console bytes as they arrive. Returns once
    /// the response head is in (with `follow`, the daemon is then subscribed).
    public func logs(_ reference: String, tail: Int? = nil, follow: Bool = false) throws -> ConsoleReader {
        var query: [String] = []
        if let tail { query.append("tail=\(tail)") }
        if follow { query.append("follow=true") }
        return try stream("GET", try path(reference, "logs") + (query.isEmpty ? "" : "?" + query.joined(separator: "&")), body: nil).body
    }

    /// `GET /v1/events`: the events that pass `filter` as NDJSON bytes;
    /// with `follow`, then each new one until the daemon ends the stream.
    public func events(_ filter: VMEventFilter, follow: Bool) throws -> ConsoleReader {
        var query: [String] = []
        if let since = filter.since { query.append("since=" + RFC3339.string(from: since)) }
        if let until = filter.until { query.append("until=" + RFC3339.string(from: until)) }
        for vm in filter.vms.sorted() { query.append("vm=" + Self.percentEncoded(vm)) }
        if follow { query.append("follow=true") }
        return try stream("GET", "/v1/events" + (query.isEmpty ? "" : "?" + query.joined(separator: "&")), body: nil).body
    }

    /// The error for a daemon that cannot be reached.
    static func unreachable(_ socketPath: String, _ code: Int32) -> UniError {
        let reason = (code == ENOENT || code == ECONNREFUSED) ? "" : " (\(String(cString: strerror(code))))"
        return UniError(.unavailable, "cannot reach unid at \(socketPath)\(reason): start it with `unid`")
    }

    struct Empty: Decodable {}

    /// The largest JSON answer read (a list of 10,000 records is ~10 MiB).
    private static let maximumBodyBytes = 64 << 20

    /// `/v1/vms/{ref}[/action]`.
    /// - Throws: ``UniError`` for an empty reference, which would make the path the list route's.
    private func path(_ reference: String, _ action: String? = nil) throws -> String {
        try VMReference.check(reference)
        return "/v1/vms/\(Self.percentEncoded(reference))" + (action.map { "/\($0)" } ?? "")
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

    func call<Result: Decodable>(_ method: String, _ target: String, body: Data? = nil, wait: Wait = .quick) throws -> Result {
        let (head, bytes) = try traced(method, target) { headers in
            let connection = try UnixHTTPConnection(socketPath: socketPath, timeout: timeout(wait))
            try connection.send(method: method, target: target, headers: headers, body: body.map(Array.init))
            let head = try connection.readHead()
            return (head, try connection.readBody(limit: Self.maximumBodyBytes))
        }
        guard head.status < 300 else { throw Self.error(from: bytes, head: head) }
        if Result.self == Empty.self, let empty = Empty() as? Result { return empty }
        do {
            return try JSONCoding.makeDecoder().decode(Result.self, from: Data(bytes))
        } catch {
            throw UniError(.internalError, "unid sent a response this client cannot read (\(method) \(target)): \(error)")
        }
    }

    /// Sends a request whose answer streams; returns at the head.
    func stream(_ method: String, _ target: String, body: Data?, wait: Wait = .quick) throws -> (head: HTTPResponseHead, body: ConsoleReader) {
        let (head, connection) = try traced(method, target) { headers in
            let connection = try UnixHTTPConnection(socketPath: socketPath, timeout: timeout(wait))
            try connection.send(method: method, target: target, headers: headers, body: body.map(Array.init))
            let head = try connection.readHead()
            // The head came in time; the body streams as long as the caller reads.
            connection.deadline = nil
            return (head, connection)
        }
        guard head.status < 300 else { throw Self.error(from: try connection.readBody(limit: 1 << 20), head: head) }
        return (head, ConsoleReader(connection))
    }

    /// Runs `exchange` in a client span (when a tracer is bootstrapped) with
    /// the span's context injected into the request headers.
    private func traced<T>(_ method: String, _ target: String, _ exchange: ([(String, String)]) throws -> (HTTPResponseHead, T)) throws -> (HTTPResponseHead, T) {
        // Nothing bootstrapped (`uni`, most embedders): even a no-op span
        // costs the CLI's start-up ~0.2 ms of first-use runtime work.
        if InstrumentationSystem.instrument is NoOpInstrument { return try exchange(headers) }
        return try withSpan(method, ofKind: .client) { span in
            span.attributes["http.request.method"] = method
            span.attributes["url.path"] = String(target.prefix { $0 != "?" })
            span.attributes["network.transport"] = "unix"
            var headers = self.headers
            InstrumentationSystem.instrument.inject(span.context, into: &headers, using: HeaderInjector())
            let result = try exchange(headers)
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
}

/// A console streamed from the daemon, read with blocking calls.
///
/// ``next()`` and ``close()`` may be called from different threads (a
/// reader blocked in `next()` returns `nil` once another thread closes).
public final class ConsoleReader: Sendable {
    /// The connection and its parser state; one reader at a time.
    private let connection: Mutex<UnixHTTPConnection>
    /// The connection's socket, shut down by ``close()`` without the lock
    /// (which a blocked ``next()`` holds); it stays open as long as this
    /// reader lives, since the connection closes it only when freed.
    private let socket: Int32
    /// Set by ``close()``: the broken read that follows is the end, not an error.
    private let closed = Atomic<Bool>(false)

    init(_ connection: sending UnixHTTPConnection) {
        socket = connection.fd
        self.connection = Mutex(connection)
    }

    /// The next chunk of console bytes, or `nil` at the end of the console.
    /// - Throws: ``UniError`` (`unavailable`) when the connection breaks mid-stream.
    public func next() throws -> [UInt8]? {
        do {
            return try connection.withLock { try $0.readBodyChunk() }
        } catch where closed.load(ordering: .acquiring) {
            return nil
        }
    }

    /// Bytes read past the last line ``nextLine()`` returned.
    private let pendingLine = Mutex<[UInt8]>([])

    /// The next line of an NDJSON stream, without its `\n`, or `nil` at
    /// the end (a last line without `\n` is returned too).
    /// - Throws: ``UniError`` (`unavailable`) when the connection breaks mid-stream.
    public func nextLine() throws -> [UInt8]? {
        while true {
            let line = pendingLine.withLock { pending -> [UInt8]? in
                guard let newline = pending.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
                defer { pending.removeFirst(newline + 1) }
                return Array(pending[..<newline])
            }
            if let line { return line }
            guard let chunk = try next() else {
                let rest = pendingLine.withLock { pending in defer { pending = [] }; return pending }
                return rest.isEmpty ? nil : rest
            }
            pendingLine.withLock { $0 += chunk }
        }
    }

    /// Stops the stream: a blocked ``next()`` returns (shutting down both
    /// directions wakes a read blocked on another thread).
    public func close() {
        closed.store(true, ordering: .releasing)
        shutdown(socket, Int32(SHUT_RDWR))
    }

    /// The rest of the console as an async stream, read on a thread of its
    /// own; ending the iteration closes the connection.
    public func stream() -> AsyncThrowingStream<[UInt8], any Error> {
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        continuation.onTermination = { _ in self.close() }
        startThread {
            do {
                while let chunk = try self.next() { continuation.yield(chunk) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return stream
    }
}

// The same calls for async callers: each runs on a thread of its own.
extension UniClient {
    /// A console stream: byte chunks as the daemon sends them.
    public typealias ByteStream = AsyncThrowingStream<[UInt8], any Error>

    /// `GET /v1/info`.
    public func info() async throws -> DaemonInfo { try await offThread { try $0.info() } }
    /// `GET /v1/vms`.
    public func list(all: Bool = false) async throws -> [VM] { try await offThread { try $0.list(all: all) } }
    /// `GET /v1/records/unreadable`.
    public func unreadableRecords() async throws -> [UnreadableRecord] { try await offThread { try $0.unreadableRecords() } }
    /// `POST /v1/vms`.
    public func create(_ config: VMConfig, start: Bool = true) async throws -> VM { try await offThread { try $0.create(config, start: start) } }
    /// `GET /v1/vms/{ref}`.
    public func inspect(_ reference: String) async throws -> VM { try await offThread { try $0.inspect(reference) } }
    /// `POST /v1/vms/{ref}/start`.
    public func start(_ reference: String) async throws -> VM { try await offThread { try $0.start(reference) } }
    /// `POST /v1/vms/{ref}/stop`.
    public func stop(_ reference: String, timeout: Duration? = nil) async throws -> VM { try await offThread { try $0.stop(reference, timeout: timeout) } }
    /// `POST /v1/vms/{ref}/kill`.
    public func kill(_ reference: String) async throws -> VM { try await offThread { try $0.kill(reference) } }
    /// `POST /v1/vms/{ref}/update`.
    public func update(_ reference: String, _ update: ResourceUpdate) async throws -> VM { try await offThread { try $0.update(reference, update) } }

    /// `GET /v1/vms/{ref}/stats`, off the calling thread.
    public func stats(_ reference: String) async throws -> VMStatsHistory { try await offThread { try $0.stats(reference) } }

    /// `GET /v1/stats`, off the calling thread.
    public func stats() async throws -> [VMStats] { try await offThread { try $0.stats() } }
    /// `POST /v1/vms/{ref}/wait`.
    public func wait(_ reference: String) async throws -> VM { try await offThread { try $0.wait(reference) } }
    /// `DELETE /v1/vms/{ref}`.
    public func remove(_ reference: String, force: Bool = false) async throws { try await offThread { try $0.remove(reference, force: force) } }

    /// `POST /v1/vms?attach=true`, with the console as an async stream.
    public func createAttached(_ config: VMConfig) async throws -> (id: String, console: ByteStream) {
        let (id, reader) = try await offThread { try $0.createAttached(config) }
        return (id, reader.stream())
    }

    /// `GET /v1/vms/{ref}/logs`, as an async stream.
    public func logs(_ reference: String, tail: Int? = nil, follow: Bool = false) async throws -> ByteStream {
        try await offThread { try $0.logs(reference, tail: tail, follow: follow) }.stream()
    }

    /// `GET /v1/events` as NDJSON bytes, read off the calling thread.
    public func events(_ filter: VMEventFilter, follow: Bool) async throws -> ByteStream {
        try await offThread { try $0.events(filter, follow: follow) }.stream()
    }

    /// Runs a blocking call on a new thread, carrying the caller's trace context.
    private func offThread<T: Sendable>(_ body: @escaping @Sendable (UniClient) throws -> T) async throws -> T {
        let context = ServiceContext.current ?? .topLevel
        return try await withCheckedThrowingContinuation { continuation in
            startThread {
                continuation.resume(with: Result { try ServiceContext.$current.withValue(context) { try body(self) } })
            }
        }
    }
}

private struct HeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) {
        carrier.append((key, value))
    }
}
