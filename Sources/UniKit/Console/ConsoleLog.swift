import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A VM's serial console: appended by the hypervisor backend, kept on disk in
/// a bounded file pair (`console.log` plus one rotated `console.log.1`), and
/// streamed live to followers.
///
/// Rotation keeps the newest output: when `console.log` would pass
/// ``maximumFileBytes`` it becomes `console.log.1` (replacing the older one),
/// so the disk holds at most twice that much per VM.
///
/// Output that cannot be written to disk (a full disk, an I/O error, a file
/// that cannot be opened) still reaches followers; it is counted in
/// ``droppedBytes`` and handed to the handler given at init, which tells the
/// first failure of each run of failures (to log once) from the rest (to count).
public final class ConsoleLog: Sendable {
    /// Output lost on the way to disk: reported by ``ConsoleLog`` when a
    /// write (or the open before it) fails after a success, or after the
    /// file was opened.
    public struct WriteFailure: Sendable, Hashable {
        /// The file that could not be written.
        public var path: String
        /// Why, as `strerror` words it: `No space left on device`.
        public var reason: String
        /// The bytes of the append that failed.
        public var droppedBytes: Int
        /// Whether this is the first failure after a success (or after the
        /// file was opened): report these, count all.
        public var isFirstOfRun: Bool

        /// A failure to write `droppedBytes` bytes to `path`, for `reason`.
        public init(path: String, reason: String, droppedBytes: Int, isFirstOfRun: Bool) {
            self.path = path
            self.reason = reason
            self.droppedBytes = droppedBytes
            self.isFirstOfRun = isFirstOfRun
        }
    }

    /// The path of the current file.
    public let path: String
    /// The size at which the current file is rotated.
    public let maximumFileBytes: Int
    private let onWriteFailure: (@Sendable (WriteFailure) -> Void)?

    private struct State {
        var descriptor: Int32 = -1
        var size: Int
        var followers: [UInt64: AsyncStream<[UInt8]>.Continuation] = [:]
        var nextFollower: UInt64 = 0
        var printedLine = false
        var droppedBytes = 0
        /// Inside a run of failures, which was already reported.
        var failing = false
    }
    private let state: Mutex<State>

    deinit {
        state.withLock { closeFile(&$0) }
    }

    /// Opens (or creates) the console log at `path`.
    /// - Parameter onWriteFailure: called, on the appending thread and
    ///   outside any lock, with every append that could not be written;
    ///   ``WriteFailure/isFirstOfRun`` marks the one to report, so a full
    ///   disk is logged once rather than per chunk.
    public init(path: String, maximumFileBytes: Int = 1 << 20, onWriteFailure: (@Sendable (WriteFailure) -> Void)? = nil) {
        self.path = path
        self.maximumFileBytes = max(4096, maximumFileBytes)
        self.onWriteFailure = onWriteFailure
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
        state = Mutex(State(size: size))
    }

    /// Marks the start of a boot: opens the file for appending now, so the
    /// first console bytes pay for no file creation (appending opens it on
    /// demand too), and resets ``hasPrintedLine``.
    public func prepare() {
        state.withLock {
            _ = openIfNeeded(&$0)
            $0.printedLine = false
        }
    }

    /// Bytes that could not be written to disk since this log was created;
    /// followers received them all the same. An append cut short by the
    /// failure counts whole, though part of it may be on disk.
    public var droppedBytes: Int {
        state.withLock { $0.droppedBytes }
    }

    /// Whether a whole line (a newline) was appended since ``prepare()``.
    public var hasPrintedLine: Bool {
        state.withLock { $0.printedLine }
    }

    /// Appends console output and hands it to every follower.
    public func append(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        let failure = state.withLock { state -> WriteFailure? in
            // Followers first: a live reader should not wait for the disk.
            for follower in state.followers.values { follower.yield(bytes) }
            if !state.printedLine, bytes.contains(UInt8(ascii: "\n")) { state.printedLine = true }
            if state.size + bytes.count > maximumFileBytes, state.size > 0 {
                closeFile(&state)
                _ = rename(path, path + ".1")
                state.size = 0
            }
            let code = openIfNeeded(&state) ?? bytes.withUnsafeBytes { POSIXIO.writeAll(state.descriptor, $0) }
            guard let code else {
                state.size += bytes.count
                state.failing = false
                return nil
            }
            state.droppedBytes += bytes.count
            defer { state.failing = true }
            return WriteFailure(path: path, reason: String(cString: strerror(code)), droppedBytes: bytes.count, isFirstOfRun: !state.failing)
        }
        if let failure { onWriteFailure?(failure) }
    }

    /// Opens the file unless it is open; a fresh descriptor starts a new
    /// run of failures. Returns the `errno` when the open fails.
    private func openIfNeeded(_ state: inout State) -> Int32? {
        guard state.descriptor < 0 else { return nil }
        state.descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard state.descriptor >= 0 else { return errno }
        state.failing = false
        return nil
    }

    private func closeFile(_ state: inout State) {
        if state.descriptor >= 0 { close(state.descriptor) }
        state.descriptor = -1
    }

    /// The last `lines` lines (all when `nil`) of what is on disk.
    public func tail(lines: Int?) -> [UInt8] {
        state.withLock { _ in readTail(lines: lines) }
    }

    /// The tail of what is on disk followed by everything appended from now
    /// on, with no byte lost or repeated between the two; the stream ends at
    /// ``finishFollowers()``.
    public func follow(tail lines: Int?) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        state.withLock { state in
            let existing = readTail(lines: lines)
            if !existing.isEmpty { continuation.yield(existing) }
            let key = state.nextFollower
            state.nextFollower += 1
            state.followers[key] = continuation
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.followers.removeValue(forKey: key) }
            }
        }
        return stream
    }

    /// Ends every follow stream (the VM stopped) and closes the file.
    public func finishFollowers() {
        let followers = state.withLock { state in
            closeFile(&state)
            defer { state.followers.removeAll() }
            return Array(state.followers.values)
        }
        for follower in followers { follower.finish() }
    }

    private func readTail(lines: Int?) -> [UInt8] {
        var bytes = [UInt8]()
        if let rotated = FileManager.default.contents(atPath: path + ".1") { bytes.append(contentsOf: rotated) }
        if let current = FileManager.default.contents(atPath: path) { bytes.append(contentsOf: current) }
        guard let lines else { return bytes }
        guard lines > 0 else { return [] }
        // Count newlines from the end; a final unterminated line counts as one.
        var seen = 0
        var index = bytes.endIndex
        if bytes.last == UInt8(ascii: "\n") { index -= 1 }
        while index > bytes.startIndex {
            index -= 1
            if bytes[index] == UInt8(ascii: "\n") {
                seen += 1
                if seen == lines { return Array(bytes[(index + 1)...]) }
            }
        }
        return bytes
    }
}
