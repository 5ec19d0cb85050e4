#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import UniCore
#if canImport(Glibc)
import Glibc
#endif

/// The head of an HTTP/1.1 response.
public struct HTTPResponseHead: Sendable, Hashable {
    /// The status code, e.g. 201.
    public var status: Int
    /// The reason phrase, e.g. `Created`.
    public var reason: String
    /// Header fields with lowercased names; a repeated field keeps its last value.
    public var headers: [String: String]
}

/// One HTTP/1.1 exchange over a Unix domain socket, with blocking reads.
///
/// The CLI's client: plain POSIX calls instead of an event-loop client,
/// because `uni` is a short process whose start-up is on the path of every
/// command (`docs/performance.md`). One request per connection
/// (`Connection: close`); bodies framed by `Content-Length`, `chunked`, or
/// the end of the connection.
final class UnixHTTPConnection {
    /// The socket; ``ConsoleReader`` shuts it down from another thread.
    let fd: Int32
    private var reader: HTTPResponseReader
    /// One receive buffer for the connection's life: console chunks arrive
    /// a few bytes at a time, and each read must not clear 64 KiB.
    private var scratch = [UInt8](repeating: 0, count: 65_536)

    /// The socket's path, for messages.
    let socketPath: String
    /// When the answer must have come (connect and every wait for bytes
    /// count against it); `nil`: wait as long as it takes (streams).
    var deadline: ContinuousClock.Instant?
    /// The limit the deadline came from, for the message.
    private let limit: Duration?

    /// Connects to `socketPath` within `timeout` (`nil`: no limit).
    /// - Throws: ``UniError`` (`unavailable`) when nothing listens there,
    ///   or when the daemon does not take the connection in time.
    init(socketPath: String, timeout: Duration? = nil) throws {
        self.socketPath = socketPath
        limit = timeout
        deadline = timeout.map { ContinuousClock.now + $0 }
        // The daemon's limit (103 bytes), below sun_path's 107: it never listens on a longer path.
        try DataDirectory.checkSocketPath(socketPath)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: socketPath.utf8)
            raw[socketPath.utf8.count] = 0
        }
        // Non-blocking while connecting: a Unix socket whose backlog is full
        // (a daemon that stopped accepting) answers EAGAIN instead of
        // blocking, and is retried until the deadline.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw UniClient.unreachable(socketPath, errno) }
        while true {
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if connected == 0 { break }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN, deadline.map({ ContinuousClock.now < $0 }) ?? true {
                usleep(2_000)
                continue
            }
            close(fd)
            if code == EAGAIN, let limit { throw UnixHTTPConnection.noAnswer(socketPath, limit) }
            throw UniClient.unreachable(socketPath, code)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        self.fd = fd
        reader = HTTPResponseReader()
    }

    deinit { close(fd) }

    /// Sends one request.
    func send(method: String, target: String, headers: [(String, String)], body: [UInt8]?) throws {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: unid\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        } else if method == "POST" || method == "PUT" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        try writeAll(Array(head.utf8) + (body ?? []))
    }

    /// Reads the response head.
    func readHead() throws -> HTTPResponseHead {
        try reader.readHead(from: fill)
    }

    /// The next piece of the body, or `nil` at its end.
    func readBodyChunk() throws -> [UInt8]? {
        try reader.readBodyChunk(from: fill)
    }

    /// The whole body, up to `limit` bytes.
    func readBody(limit: Int) throws -> [UInt8] {
        var body: [UInt8] = []
        while let chunk = try readBodyChunk() {
            body += chunk
            if body.count > limit { throw UniError(.internalError, "unid's answer is larger than \(limit) bytes") }
        }
        return body
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        if let code = bytes.withUnsafeBytes({ POSIXIO.writeAll(fd, $0, noSignal: true) }) {
            throw UniError(.unavailable, "unid closed the connection: \(String(cString: strerror(code)))")
        }
    }

    /// The error for a daemon that took the request and did not answer in time.
    static func noAnswer(_ socketPath: String, _ limit: Duration) -> UniError {
        UniError(.unavailable, "unid at \(socketPath) did not answer within \(limit) (set UNI_API_TIMEOUT=SECONDS to wait longer)")
    }

    /// Appends what the socket has to `buffer`; false at the end of the stream.
    private func fill(_ buffer: inout [UInt8]) throws -> Bool {
        if let deadline, let limit {
            while true {
                let remaining = deadline - ContinuousClock.now
                guard remaining > .zero else { throw UnixHTTPConnection.noAnswer(socketPath, limit) }
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let milliseconds = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
                let ready = poll(&descriptor, 1, milliseconds)
                if ready > 0 { break }
                if ready < 0, errno != EINTR { throw UniError(.unavailable, "lost the connection to unid: \(String(cString: strerror(errno)))") }
            }
        }
        while true {
            let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer += scratch[0..<count]
                return true
            }
            if count == 0 { return false }
            if errno == EINTR { continue }
            throw UniError(.unavailable, "lost the connection to unid: \(String(cString: strerror(errno)))")
        }
    }
}

/// Parses an HTTP/1.1 response from bytes as they arrive. Kept apart from
/// the socket so that framing (split heads, chunk sizes, extensions,
/// trailers, early ends) is tested byte by byte.
struct HTTPResponseReader {
    /// Reads more bytes into its argument; returns false at the end of the stream.
    typealias Fill = (inout [UInt8]) throws -> Bool

    private enum Framing {
        case length(remaining: Int)
        case chunked(remaining: Int?)
        case untilClose
        case done
    }

    private var buffer: [UInt8] = []
    private var framing = Framing.done
    /// The largest response head accepted.
    static let maximumHeadBytes = 64 * 1024

    mutating func readHead(from fill: Fill) throws -> HTTPResponseHead {
        var searchFrom = 0
        while true {
            if let end = Self.find([13, 10, 13, 10], in: buffer, from: searchFrom) {
                let head = try Self.parseHead(buffer[..<end])
                buffer.removeFirst(end + 4)
                framing = try Self.framing(of: head)
                return head
            }
            guard buffer.count <= Self.maximumHeadBytes else { throw Self.malformed("a response head over 64 KiB") }
            searchFrom = max(0, buffer.count - 3)
            guard try fill(&buffer) else { throw UniError(.unavailable, "unid closed the connection before answering") }
        }
    }

    mutating func readBodyChunk(from fill: Fill) throws -> [UInt8]? {
        while true {
            switch framing {
            case .done:
                return nil
            case .length(let remaining):
                if remaining == 0 { framing = .done; return nil }
                if buffer.isEmpty, !(try fill(&buffer)) { throw Self.truncated() }
                let count = min(remaining, buffer.count)
                defer { buffer.removeFirst(count) }
                framing = .length(remaining: remaining - count)
                return Array(buffer[..<count])
            case .untilClose:
                if buffer.isEmpty, !(try fill(&buffer)) { framing = .done; return nil }
                defer { buffer.removeAll(keepingCapacity: true) }
                return buffer
            case .chunked(remaining: nil):
                guard let lineEnd = Self.find([13, 10], in: buffer, from: 0) else {
                    guard buffer.count < 1024 else { throw Self.malformed("a chunk size line over 1 KiB") }
                    guard try fill(&buffer) else { throw Self.truncated() }
                    continue
                }
                let line = String(decoding: buffer[..<lineEnd], as: UTF8.self)
                let sizeText = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingSpaces()
                guard let size = Int(sizeText, radix: 16), size >= 0 else { throw Self.malformed("chunk size '\(line)'") }
                buffer.removeFirst(lineEnd + 2)
                if size == 0 {
                    try skipTrailers(fill)
                    framing = .done
                    return nil
                }
                framing = .chunked(remaining: size)
            case .chunked(remaining: let remaining?):
                if remaining == 0 {
                    while buffer.count < 2 { guard try fill(&buffer) else { throw Self.truncated() } }
                    guard buffer[0] == 13, buffer[1] == 10 else { throw Self.malformed("a chunk not followed by CRLF") }
                    buffer.removeFirst(2)
                    framing = .chunked(remaining: nil)
                    continue
                }
                if buffer.isEmpty, !(try fill(&buffer)) { throw Self.truncated() }
                let count = min(remaining, buffer.count)
                defer { buffer.removeFirst(count) }
                framing = .chunked(remaining: remaining - count)
                return Array(buffer[..<count])
            }
        }
    }

    private mutating func skipTrailers(_ fill: Fill) throws {
        while true {
            guard let lineEnd = Self.find([13, 10], in: buffer, from: 0) else {
                guard buffer.count < Self.maximumHeadBytes, try fill(&buffer) else { throw Self.truncated() }
                continue
            }
            buffer.removeFirst(lineEnd + 2)
            if lineEnd == 0 { return }
        }
    }

    private static func parseHead(_ bytes: ArraySlice<UInt8>) throws -> HTTPResponseHead {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]), (100...599).contains(status) else {
            throw malformed("status line '\(lines[0])'")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw malformed("header line '\(line)'") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingSpaces()
        }
        return HTTPResponseHead(status: status, reason: statusLine.count > 2 ? String(statusLine[2]) : "", headers: headers)
    }

    private static func framing(of head: HTTPResponseHead) throws -> Framing {
        if head.status == 204 || head.status == 304 || (100..<200).contains(head.status) { return .done }
        if let encoding = head.headers["transfer-encoding"] {
            guard encoding.lowercased() == "chunked" else { throw malformed("transfer-encoding '\(encoding)'") }
            return .chunked(remaining: nil)
        }
        if let length = head.headers["content-length"] {
            guard let count = Int(length), count >= 0 else { throw malformed("content-length '\(length)'") }
            return .length(remaining: count)
        }
        return .untilClose
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }

    private static func malformed(_ what: String) -> UniError {
        UniError(.internalError, "unid sent a malformed HTTP response: \(what)")
    }

    private static func truncated() -> UniError {
        UniError(.unavailable, "unid closed the connection in the middle of an answer")
    }
}
