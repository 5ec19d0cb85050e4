import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The VM event history: the newest ``capacity`` events in memory, and on
/// disk in `events.jsonl` (one JSON object per line) plus one rotated
/// `events.jsonl.1`, so a restarted daemon serves what the last one saw and
/// the disk holds at most twice ``capacity`` lines.
///
/// Appends are one `write(2)` each, without fsync: an event is history, and
/// the VM records themselves are the durable truth. A line that cannot be
/// read back (a torn last write) is skipped and counted.
public final class EventLog: Sendable {
    /// The file (`nil`: memory only).
    public let path: String?
    /// Events kept in memory, and lines per file before rotation.
    public let capacity: Int

    private struct State {
        var events: [VMEvent] = []
        var nextSequence: UInt64 = 1
        var descriptor: Int32 = -1
        var linesInFile = 0
        var unreadableLines = 0
        var followers: [UInt64: (filter: VMEventFilter, continuation: AsyncStream<VMEvent>.Continuation)] = [:]
        var nextFollower: UInt64 = 0
    }

    private let state: Mutex<State>

    /// Opens the history at `path`, reading what an earlier daemon wrote.
    public init(path: String?, capacity: Int = 1000) {
        self.path = path
        self.capacity = max(1, capacity)
        var initial = State()
        if let path {
            let decoder = JSONCoding.makeDecoder()
            for file in [path + ".1", path] {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                var lines = 0
                for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
                    lines += 1
                    guard let event = try? decoder.decode(VMEvent.self, from: Data(line)) else {
                        initial.unreadableLines += 1
                        continue
                    }
                    initial.events.append(event)
                    initial.nextSequence = max(initial.nextSequence, event.sequence + 1)
                }
                if file == path { initial.linesInFile = lines }
            }
            if initial.events.count > self.capacity { initial.events.removeFirst(initial.events.count - self.capacity) }
        }
        state = Mutex(initial)
    }

    deinit {
        state.withLock { if $0.descriptor >= 0 { close($0.descriptor) } }
    }

    /// Lines of the files that could not be read back at open.
    public var unreadableLines: Int { state.withLock { $0.unreadableLines } }

    /// Records an event now and hands it to the followers whose filter it passes.
    @discardableResult
    public func record(_ kind: VMEvent.Kind, vmID: VMID, vmName: String, attributes: [String: String] = [:], time: Date = Date()) -> VMEvent {
        state.withLock { state in
            let event = VMEvent(sequence: state.nextSequence, time: time, vmID: vmID, vmName: vmName, kind: kind, attributes: attributes)
            state.nextSequence += 1
            state.events.append(event)
            if state.events.count > capacity { state.events.removeFirst(state.events.count - capacity) }
            append(event, &state)
            for follower in state.followers.values where follower.filter.matches(event) { follower.continuation.yield(event) }
            return event
        }
    }

    /// The events in memory that pass `filter`, oldest first.
    public func events(matching filter: VMEventFilter = VMEventFilter()) -> [VMEvent] {
        state.withLock { $0.events.filter(filter.matches) }
    }

    /// The events that pass `filter` so far, then each new one, with none
    /// lost or repeated in between; ends when the stream is dropped.
    public func follow(matching filter: VMEventFilter = VMEventFilter()) -> AsyncStream<VMEvent> {
        let (stream, continuation) = AsyncStream<VMEvent>.makeStream(bufferingPolicy: .bufferingNewest(capacity * 2))
        state.withLock { state in
            for event in state.events where filter.matches(event) { continuation.yield(event) }
            let key = state.nextFollower
            state.nextFollower += 1
            state.followers[key] = (filter, continuation)
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.followers.removeValue(forKey: key) }
            }
        }
        return stream
    }

    /// Ends every follow stream (the daemon is going away).
    public func finishFollowers() {
        let followers = state.withLock { state in
            defer { state.followers.removeAll() }
            return state.followers.values.map(\.continuation)
        }
        followers.forEach { $0.finish() }
    }

    private func append(_ event: VMEvent, _ state: inout State) {
        guard let path, var line = try? JSONCoding.makeEncoder().encode(event) else { return }
        line.append(UInt8(ascii: "\n"))
        if state.linesInFile >= capacity {
            if state.descriptor >= 0 { close(state.descriptor) }
            state.descriptor = -1
            _ = rename(path, path + ".1")
            state.linesInFile = 0
        }
        if state.descriptor < 0 {
            state.descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard state.descriptor >= 0 else { return }
        }
        // A failed write loses this line of history only; the records are the truth.
        if line.withUnsafeBytes({ POSIXIO.writeAll(state.descriptor, $0) }) == nil { state.linesInFile += 1 }
    }
}
