#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What brings a stopped VM back (`uni run --restart`).
///
/// Written `never`, `on-failure[:N]` or `always[:N]`, the same in the CLI
/// and in JSON. `N` bounds the restarts in a row (those not separated by a
/// stable run, ``RestartBackoff/stableRun``); without it there is no bound.
/// A `stop`, `kill` or `rm` is never undone by a policy.
public struct RestartPolicy: Sendable, Hashable, Codable, CustomStringConvertible {
    /// When to restart.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// Never: the default.
        case never
        /// When the guest exits with a non-zero code, QEMU crashes, a
        /// restart fails to start, or the health probe finds it unhealthy.
        case onFailure = "on-failure"
        /// Whenever it stops by itself, and when a new daemon finds it
        /// running under an earlier one or stopped by a daemon shutdown.
        case always
    }

    /// When to restart.
    public var mode: Mode
    /// Restarts in a row allowed; `nil`: no bound.
    public var maximumRetries: Int?

    /// The default: never restart.
    public static let never = RestartPolicy(mode: .never)

    /// The largest `N` accepted in `on-failure:N`.
    public static let maximumRetriesLimit = 1_000

    /// A policy; ``parse(_:)`` checks text.
    public init(mode: Mode, maximumRetries: Int? = nil) {
        self.mode = mode
        self.maximumRetries = maximumRetries
    }

    /// Parses `never`, `on-failure`, `on-failure:N`, `always` or `always:N`.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the text and the allowed forms.
    public static func parse(_ text: String) throws -> RestartPolicy {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let allowed = "never, on-failure[:N] or always[:N] with N from 1 to \(maximumRetriesLimit)"
        guard let mode = Mode(rawValue: String(parts[0])) else {
            throw UniError.invalid("invalid restart policy '\(text.escapingControlCharacters)': use \(allowed)")
        }
        guard parts.count == 2 else { return RestartPolicy(mode: mode) }
        guard mode != .never, let count = Int(parts[1]), (1...maximumRetriesLimit).contains(count) else {
            throw UniError.invalid("invalid restart policy '\(text.escapingControlCharacters)': use \(allowed)")
        }
        return RestartPolicy(mode: mode, maximumRetries: count)
    }

    public var description: String {
        maximumRetries.map { "\(mode.rawValue):\($0)" } ?? mode.rawValue
    }

    public init(from decoder: any Decoder) throws {
        self = try RestartPolicy.parse(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The waits between restarts: ``initial`` after the first stop, doubled
/// after each restart in a row, at most ``maximum``; a run of at least
/// ``stableRun`` starts the count again.
public struct RestartBackoff: Sendable, Hashable {
    /// The wait before the first restart in a row.
    public var initial: Duration
    /// The longest wait.
    public var maximum: Duration
    /// A run this long ends a row of restarts.
    public var stableRun: Duration

    /// The documented bounds: 500 ms doubling to at most 30 s; a row ends
    /// after 10 s of running.
    public static let standard = RestartBackoff(initial: .milliseconds(500), maximum: .seconds(30), stableRun: .seconds(10))

    /// Bounds of your own.
    public init(initial: Duration, maximum: Duration, stableRun: Duration) {
        self.initial = initial
        self.maximum = maximum
        self.stableRun = stableRun
    }

    /// The wait before restart number `attempt` of a row (1 is the first).
    public func delay(beforeAttempt attempt: Int) -> Duration {
        var delay = initial
        for _ in 1..<max(1, attempt) {
            delay = delay * 2
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }
}

/// The state of a VM's health probe.
public enum HealthStatus: String, Codable, Sendable, CaseIterable {
    /// No health check is configured.
    case none
    /// Checked, but not healthy yet: since the start, until the first
    /// success or the failures that make it unhealthy.
    case starting
    /// The last probe succeeded.
    case healthy
    /// The last ``HealthCheck/retries`` probes failed.
    case unhealthy
}

/// A probe of a guest service through its published port
/// (`--health-check tcp:PORT` or `http:PORT[/path]`).
///
/// PORT is the guest port; the probe connects to its host side, which
/// `-p` must publish over TCP. With QEMU's user-mode network the host side
/// accepts a connection even when nothing listens in the guest, so a probe
/// succeeds only on an answer only the guest can give (docs/health.md).
public struct HealthCheck: Codable, Sendable, Hashable {
    /// What the probe does.
    public enum Kind: String, Codable, Sendable {
        /// Connects, and needs the guest's side to be there (docs/health.md).
        case tcp
        /// Sends `GET path` and needs an HTTP status line below 400.
        case http
    }

    /// What the probe does.
    public var kind: Kind
    /// The guest port (published with `-p`).
    public var guestPort: UInt16
    /// The HTTP path (`/` when not given); `nil` for tcp.
    public var path: String?
    /// Between two probes.
    public var interval: Duration
    /// How long one probe may take.
    public var timeout: Duration
    /// Failures in a row that make the VM unhealthy.
    public var retries: Int
    /// After a start, failures do not count for this long (a success does).
    public var startPeriod: Duration

    /// Between two probes by default: 10 s.
    public static let defaultInterval = Duration.seconds(10)
    /// One probe's limit by default: 3 s.
    public static let defaultTimeout = Duration.seconds(3)
    /// Failures in a row that make a VM unhealthy, by default.
    public static let defaultRetries = 3
    /// The grace after a start by default: none.
    public static let defaultStartPeriod = Duration.zero

    /// A check with the documented defaults.
    public init(kind: Kind, guestPort: UInt16, path: String? = nil, interval: Duration = HealthCheck.defaultInterval,
                timeout: Duration = HealthCheck.defaultTimeout, retries: Int = HealthCheck.defaultRetries,
                startPeriod: Duration = HealthCheck.defaultStartPeriod) {
        self.kind = kind
        self.guestPort = guestPort
        self.path = kind == .http ? (path ?? "/") : nil
        self.interval = interval
        self.timeout = timeout
        self.retries = retries
        self.startPeriod = startPeriod
    }

    /// Parses `tcp:PORT` or `http:PORT[/path]`, with the other settings at their defaults.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the text and the allowed forms.
    public static func parse(_ text: String) throws -> HealthCheck {
        let invalid = UniError.invalid("invalid health check '\(text.escapingControlCharacters)': use tcp:PORT or http:PORT[/path], PORT being a guest port published with -p")
        guard let colon = text.firstIndex(of: ":"), let kind = Kind(rawValue: String(text[..<colon])) else { throw invalid }
        let rest = text[text.index(after: colon)...]
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let port = UInt16(rest[..<slash]), port > 0 else { throw invalid }
        let path = slash < rest.endIndex ? String(rest[slash...]) : nil
        if kind == .tcp, path != nil { throw invalid }
        let check = HealthCheck(kind: kind, guestPort: port, path: path)
        try check.validate()
        return check
    }

    /// Checks the settings on their own; ``VMConfig/validated()`` also
    /// checks that the port is published.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the bad value and what is allowed.
    public func validate() throws {
        guard guestPort > 0 else { throw UniError.invalid("invalid health check port 0: use 1-65535") }
        if let path {
            guard path.hasPrefix("/"), path.utf8.count <= 1024, !path.containsControlCharacter, !path.contains(" ") else {
                throw UniError.invalid("invalid health check path '\(path.escapingControlCharacters)': use an absolute path without spaces or control characters, at most 1024 bytes")
            }
        }
        try HealthCheck.check(interval, "--health-interval", minimum: .milliseconds(100))
        try HealthCheck.check(timeout, "--health-timeout", minimum: .milliseconds(100))
        try HealthCheck.check(startPeriod, "--health-start-period", minimum: .zero)
        guard (1...100).contains(retries) else {
            throw UniError.invalid("invalid --health-retries '\(retries)': use a whole number from 1 to 100")
        }
    }

    private static func check(_ value: Duration, _ flag: String, minimum: Duration) throws {
        guard value >= minimum, value <= .seconds(86_400) else {
            throw UniError.invalid("invalid \(flag) '\(value.wholeMilliseconds)ms': use \(minimum.wholeMilliseconds)ms to 24h")
        }
    }

    enum CodingKeys: String, CodingKey {
        case kind = "type", guestPort = "port", path, interval = "interval_ms", timeout = "timeout_ms", retries
        case startPeriod = "start_period_ms"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .kind)
        guard let kind = Kind(rawValue: name) else {
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "'\(name.escapingControlCharacters)' is not tcp or http")
        }
        if kind == .tcp, c.contains(.path) {
            throw UniError.invalid("invalid health_check: a path applies to http checks only")
        }
        let milliseconds = { (key: CodingKeys, fallback: Duration) throws -> Duration in
            try c.decodeWholeNumberIfPresent(Int64.self, forKey: key, allowed: "milliseconds, a whole number").map(Duration.milliseconds) ?? fallback
        }
        self.init(kind: kind,
                  guestPort: try c.decodeWholeNumberIfPresent(UInt16.self, forKey: .guestPort, allowed: "a guest port, 1-65535") ?? 0,
                  path: try c.decodeIfPresent(String.self, forKey: .path),
                  interval: try milliseconds(.interval, HealthCheck.defaultInterval),
                  timeout: try milliseconds(.timeout, HealthCheck.defaultTimeout),
                  retries: try c.decodeWholeNumberIfPresent(Int.self, forKey: .retries, allowed: "1-100") ?? HealthCheck.defaultRetries,
                  startPeriod: try milliseconds(.startPeriod, HealthCheck.defaultStartPeriod))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(guestPort, forKey: .guestPort)
        try c.encodeIfPresent(path, forKey: .path)
        try c.encode(interval.wholeMilliseconds, forKey: .interval)
        try c.encode(timeout.wholeMilliseconds, forKey: .timeout)
        try c.encode(retries, forKey: .retries)
        try c.encode(startPeriod.wholeMilliseconds, forKey: .startPeriod)
    }
}

/// One end of a VM's process, kept in ``VM/exits`` (the newest last).
public struct ExitRecord: Codable, Sendable, Hashable {
    /// When it ended.
    public var finishedAt: Date
    /// Why.
    public var reason: StopReason
    /// The docker-style exit code (`nil` when it never ran).
    public var exitCode: Int32?
    /// The signal that killed QEMU, if one did.
    public var signal: Int32?
    /// What went wrong, when something did (QEMU's stderr for a failed start).
    public var error: String?

    /// A record of one end.
    public init(finishedAt: Date, reason: StopReason, exitCode: Int32? = nil, signal: Int32? = nil, error: String? = nil) {
        self.finishedAt = finishedAt
        self.reason = reason
        self.exitCode = exitCode
        self.signal = signal
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case finishedAt = "finished_at", reason, exitCode = "exit_code", signal, error
    }
}

extension Duration {
    /// The whole milliseconds of this duration.
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
