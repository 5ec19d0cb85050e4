/// The files of one VM inside `<data-dir>/vms/<id>/`: the one place that
/// names them (docs/architecture.md, "Data dir").
public struct VMDirectory: Sendable, Hashable {
    /// The folder itself.
    public let path: String

    /// Wraps the folder at `path`.
    public init(path: String) {
        self.path = path
    }

    /// The name of the record file.
    public static let recordName = "state.json"
    /// The name of QEMU's QMP control socket, the deepest socket in a data dir.
    public static let qmpSocketName = "qmp.sock"

    /// The durable record.
    public var recordPath: String { path + "/" + VMDirectory.recordName }
    /// The serial console (rotated to `console.log.1`).
    public var consolePath: String { path + "/console.log" }
    /// QEMU's QMP control socket.
    public var qmpSocketPath: String { path + "/" + VMDirectory.qmpSocketName }
    /// The QEMU pid, written right after the spawn, read by orphan recovery.
    public var pidFilePath: String { path + "/qemu.pid" }
    /// The 0600 `KEY=VALUE` file handed to the guest through fw_cfg.
    public var environmentFilePath: String { path + "/env" }
    /// The FIFO QEMU's `filter-dump` writes the packets the guest receives
    /// into (pcap record headers), while the VM's process runs.
    public var networkReceivedDumpPath: String { path + "/net-received.fifo" }
    /// The FIFO QEMU's `filter-dump` writes the packets the guest sends into.
    public var networkTransmittedDumpPath: String { path + "/net-transmitted.fifo" }
}

extension DataDirectory {
    /// The files of VM `id`.
    public func files(of id: VMID) -> VMDirectory { VMDirectory(path: vmDirectory(id)) }
}
