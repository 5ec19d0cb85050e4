import Synchronization

/// A clock that moves only when told (``advance(by:)``): restart backoffs,
/// health probe intervals and stop timeouts run in tests without sleeping.
///
/// Sleepers are woken in deadline order as time passes them; a cancelled
/// sleeper throws `CancellationError` at once. ``waitForSleep(ofLength:)``
/// lets a test wait until the code under test has started the sleep it
/// expects, so it never advances time too early.
public final class ManualClock: Clock, Sendable {
    /// A point on the manual time line.
    public struct Instant: InstantProtocol, Sendable {
        /// Time since the clock was made.
        public var offset: Duration

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        let deadline: Instant
        let length: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID: UInt64 = 0
        var sleepers: [UInt64: Sleeper] = [:]
        var cancelledBeforeSleeping: Set<UInt64> = []
        var watchers: [(length: Duration, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    /// A clock at offset zero.
    public init() {}

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .zero }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resume, watchers) = state.withLock { state -> (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
                    if state.cancelledBeforeSleeping.remove(id) != nil { return (.failure(CancellationError()), []) }
                    if deadline <= state.now { return (.success(()), []) }
                    let length = state.now.duration(to: deadline)
                    state.sleepers[id] = Sleeper(deadline: deadline, length: length, continuation: continuation)
                    var woken: [CheckedContinuation<Void, Never>] = []
                    state.watchers.removeAll { watcher in
                        guard watcher.length == length else { return false }
                        woken.append(watcher.continuation)
                        return true
                    }
                    return (nil, woken)
                }
                watchers.forEach { $0.resume() }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                if let sleeper = state.sleepers.removeValue(forKey: id) { return sleeper }
                state.cancelledBeforeSleeping.insert(id)
                return nil
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes, in deadline order, every sleeper it passes.
    public func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers[id] = nil }
            return due.values.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// The lengths of the sleeps in progress, as they were asked for, shortest first.
    public var pendingSleeps: [Duration] {
        state.withLock { $0.sleepers.values.map(\.length).sorted() }
    }

    /// Waits until a sleep of exactly `length` is in progress (one already
    /// in progress counts).
    public func waitForSleep(ofLength length: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let present = state.withLock { state -> Bool in
                if state.sleepers.values.contains(where: { $0.length == length }) { return true }
                state.watchers.append((length, continuation))
                return false
            }
            if present { continuation.resume() }
        }
    }
}
