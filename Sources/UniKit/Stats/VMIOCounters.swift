/// A VM's I/O counters as its hypervisor reports them, cumulative since the
/// process started; `nil` for a counter the backend cannot measure.
public struct VMIOCounters: Sendable, Hashable {
    /// Bytes the guest received over its network.
    public var networkReceivedBytes: UInt64?
    /// Bytes the guest sent over its network.
    public var networkTransmittedBytes: UInt64?
    /// Bytes read from the VM's disk.
    public var diskReadBytes: UInt64?
    /// Bytes written to the VM's disk.
    public var diskWrittenBytes: UInt64?
    /// Read operations on the VM's disk.
    public var diskReadOperations: UInt64?
    /// Write operations on the VM's disk.
    public var diskWriteOperations: UInt64?

    /// Counters; the ones not given are unavailable.
    public init(networkReceivedBytes: UInt64? = nil, networkTransmittedBytes: UInt64? = nil,
                diskReadBytes: UInt64? = nil, diskWrittenBytes: UInt64? = nil,
                diskReadOperations: UInt64? = nil, diskWriteOperations: UInt64? = nil) {
        self.networkReceivedBytes = networkReceivedBytes
        self.networkTransmittedBytes = networkTransmittedBytes
        self.diskReadBytes = diskReadBytes
        self.diskWrittenBytes = diskWrittenBytes
        self.diskReadOperations = diskReadOperations
        self.diskWriteOperations = diskWriteOperations
    }

    /// Nothing measured.
    public static let unavailable = VMIOCounters()
}
