import CUniSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What one health probe saw.
public enum HealthProbeResult: Sendable, Hashable {
    /// The guest answered.
    case healthy
    /// It did not; the text says what was seen, for `last_health_error`.
    case unhealthy(String)
}

/// Probes a guest service through its host-side port: the backend of the
/// manager's health checks. The product uses ``SocketHealthProber``; tests
/// and embedders can script their own.
public protocol HealthProber: Sendable {
    /// Probes `check` at `host:port` (the published host side of its guest
    /// port), taking at most `check.timeout`.
    func probe(_ check: HealthCheck, host: String, port: UInt16) async -> HealthProbeResult
}

/// Health probes over real TCP connections, each on its own short-lived
/// thread (connect, poll, read: blocking work kept off Swift's pool).
///
/// QEMU's user-mode network accepts the host side of a published port at
/// once, then connects to the guest; when nothing listens there the guest
/// refuses and QEMU closes the host side within milliseconds. So:
/// - `tcp`: the guest must answer. Data from it is an answer. A connection
///   that closes before the probe said anything is a refusal (nothing
///   listens). A connection still open after a settle time (half the
///   timeout, at most 1 s) gets the probe's end-of-stream, and a guest
///   that is there closes in reply; silence until the timeout is a guest
///   that does not answer (hung, or its network stack gone).
/// - `http`: `GET path` must bring an HTTP status line below 400.
public struct SocketHealthProber: HealthProber {
    /// A prober.
    public init() {}

    public func probe(_ check: HealthCheck, host: String, port: UInt16) async -> HealthProbeResult {
        await withCheckedContinuation { continuation in
            ChildProcess.startThread(name: "uni-health") {
                continuation.resume(returning: SocketHealthProber.probeBlocking(check, host: host, port: port))
            }
        }
    }

    static func probeBlocking(_ check: HealthCheck, host: String, port: UInt16) -> HealthProbeResult {
        let deadline = ContinuousClock.now + check.timeout
        let socket: Int32
        switch connect(host: host, port: port, deadline: deadline) {
        case .success(let fd): socket = fd
        case .failure(let failure): return .unhealthy(failure.reason)
        }
        defer { close(socket) }
        switch check.kind {
        case .tcp: return probeTCP(socket, guestPort: check.guestPort, timeout: check.timeout, deadline: deadline)
        case .http: return probeHTTP(socket, path: check.path ?? "/", host: host, port: port, deadline: deadline)
        }
    }

    private static func probeTCP(_ socket: Int32, guestPort: UInt16, timeout: Duration, deadline: ContinuousClock.Instant) -> HealthProbeResult {
        let settle = min(timeout / 2, .seconds(1))
        switch read(socket, until: ContinuousClock.now + settle) {
        case .data: return .healthy
        case .closed: return .unhealthy("connection closed before the guest answered: nothing listens on guest port \(guestPort)")
        case .failed(let reason): return .unhealthy(reason)
        case .timedOut: break
        }
        shutdown(socket, Int32(SHUT_WR))
        switch read(socket, until: deadline) {
        case .data, .closed: return .healthy
        case .failed(let reason): return .unhealthy(reason)
        case .timedOut: return .unhealthy("the guest did not answer on port \(guestPort) within \(timeout)")
        }
    }

    private static func probeHTTP(_ socket: Int32, path: String, host: String, port: UInt16, deadline: ContinuousClock.Instant) -> HealthProbeResult {
        let request = "GET \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\nUser-Agent: uni-health\r\nConnection: close\r\n\r\n"
        let written = Array(request.utf8).withUnsafeBytes { POSIXIO.writeAll(socket, $0) }
        if let code = written { return .unhealthy("cannot send the request: \(String(cString: strerror(code)))") }
        var received: [UInt8] = []
        while !received.contains(UInt8(ascii: "\n")) && received.count < 4096 {
            switch read(socket, until: deadline) {
            case .data(let bytes): received += bytes
            case .closed:
                return .unhealthy(received.isEmpty ? "connection closed without an HTTP answer: nothing listens on the guest port"
                                                   : "not an HTTP answer: \(describe(received))")
            case .failed(let reason): return .unhealthy(reason)
            case .timedOut: return .unhealthy("no HTTP answer within the timeout")
            }
        }
        let line = String(decoding: received.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status) else {
            return .unhealthy("not an HTTP answer: \(describe(received))")
        }
        return status < 400 ? .healthy : .unhealthy("HTTP \(status)")
    }

    private static func describe(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(60), as: UTF8.self).escapingControlCharacters
    }

    private enum ReadOutcome {
        case data([UInt8]), closed, timedOut, failed(String)
    }

    private static func read(_ socket: Int32, until deadline: ContinuousClock.Instant) -> ReadOutcome {
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return .timedOut }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: max(1, left.wholeMilliseconds)))
            if ready < 0 {
                if errno == EINTR { continue }
                return .failed("poll: \(String(cString: strerror(errno)))")
            }
            if ready == 0 { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { Glibc.recv(socket, $0.baseAddress, $0.count, 0) }
            if count > 0 { return .data(Array(buffer[0..<count])) }
            if count == 0 { return .closed }
            if errno == EINTR || errno == EAGAIN { continue }
            if errno == ECONNRESET { return .closed }
            return .failed("read: \(String(cString: strerror(errno)))")
        }
    }

    private static func connect(host: String, port: UInt16, deadline: ContinuousClock.Instant) -> Result<Int32, ProbeFailure> {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            return .failure(ProbeFailure("cannot probe host address '\(host)': not an IPv4 address"))
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(ProbeFailure("socket: \(String(cString: strerror(errno)))")) }
        let started = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if started != 0 && errno != EINPROGRESS {
            let reason = String(cString: strerror(errno))
            close(fd)
            return .failure(ProbeFailure("cannot connect to \(host):\(port): \(reason)"))
        }
        if started != 0 {
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let left = max(1, ContinuousClock.now.duration(to: deadline).wholeMilliseconds)
            var ready: Int32
            repeat { ready = poll(&descriptor, 1, Int32(clamping: left)) } while ready < 0 && errno == EINTR
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard ready > 0, error == 0 else {
                close(fd)
                let reason = ready == 0 ? "timed out" : String(cString: strerror(error))
                return .failure(ProbeFailure("cannot connect to \(host):\(port): \(reason)"))
            }
        }
        return .success(fd)
    }

    private struct ProbeFailure: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
