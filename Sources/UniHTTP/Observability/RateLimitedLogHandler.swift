import Foundation
import Logging
import Synchronization

/// Passes at most one line per `interval` to the wrapped handler and counts
/// the rest, so a collector that is down cannot flood the daemon's log: the
/// OTLP exporter's errors go through one of these (at most one a minute).
public struct RateLimitedLogHandler: LogHandler {
    private var wrapped: any LogHandler
    private let interval: Duration
    private let state: SharedState

    private final class SharedState: Sendable {
        let value = Mutex<(last: ContinuousClock.Instant?, suppressed: Int)>((nil, 0))
    }

    /// Wraps `handler`.
    public init(wrapping handler: any LogHandler, interval: Duration = .seconds(60)) {
        wrapped = handler
        self.interval = interval
        state = SharedState()
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        let now = ContinuousClock.now
        let suppressed: Int? = state.value.withLock { state in
            if let last = state.last, now - last < interval {
                state.suppressed += 1
                return nil
            }
            defer { state = (now, 0) }
            return state.suppressed
        }
        guard let suppressed else { return }
        var event = event
        if suppressed > 0 {
            var metadata = event.metadata ?? [:]
            metadata["suppressed_since_last"] = "\(suppressed)"
            event.metadata = metadata
        }
        wrapped.log(event: event)
    }
}
