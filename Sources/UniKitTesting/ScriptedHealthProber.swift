import Synchronization
import UniKit

/// A health prober that answers what the test says (``answer``) and counts
/// the probes, for driving health checks without a guest.
public final class ScriptedHealthProber: HealthProber {
    private let state = Mutex<(answer: HealthProbeResult, probes: [(host: String, port: UInt16)])>((.healthy, []))

    /// A prober answering `answer` until told otherwise.
    public init(answer: HealthProbeResult = .healthy) {
        state.withLock { $0.answer = answer }
    }

    /// What the next probes answer.
    public var answer: HealthProbeResult {
        get { state.withLock { $0.answer } }
        set { state.withLock { $0.answer = newValue } }
    }

    /// Where each probe went, in order.
    public var probes: [(host: String, port: UInt16)] { state.withLock { $0.probes } }

    public func probe(_ check: HealthCheck, host: String, port: UInt16) async -> HealthProbeResult {
        state.withLock { state in
            state.probes.append((host, port))
            return state.answer
        }
    }
}
