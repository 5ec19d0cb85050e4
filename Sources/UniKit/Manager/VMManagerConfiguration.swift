import Foundation

/// Settings of a ``VMManager``; every root is injectable.
public struct VMManagerConfiguration: Sendable {
    /// Where records and runtime files live.
    public var dataDirectory: DataDirectory
    /// How long a graceful stop waits for the guest before killing it.
    public var stopTimeout: Duration
    /// The size at which a VM's `console.log` is rotated.
    public var consoleLogMaximumBytes: Int
    /// How many removed VMs' final records are kept for `wait`.
    public var removedRecordsKept: Int
    /// The wall clock used for record timestamps.
    public var now: @Sendable () -> Date

    /// Creates a configuration with the documented defaults.
    public init(
        dataDirectory: DataDirectory,
        stopTimeout: Duration = .seconds(10),
        consoleLogMaximumBytes: Int = 1 << 20,
        removedRecordsKept: Int = 256,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.dataDirectory = dataDirectory
        self.stopTimeout = stopTimeout
        self.consoleLogMaximumBytes = consoleLogMaximumBytes
        self.removedRecordsKept = removedRecordsKept
        self.now = now
    }
}
