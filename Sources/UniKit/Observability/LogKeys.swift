/// Metadata keys of UniKit's structured logs; documented in `docs/observability.md`.
public enum LogKeys {
    /// The VM's id.
    public static let vmID = "vm_id"
    /// The VM's name.
    public static let vmName = "name"
    /// The state before a transition.
    public static let from = "from"
    /// The state after a transition.
    public static let to = "to"
    /// The error message of a failure.
    public static let error = "error"
    /// The QEMU process id.
    public static let pid = "pid"
    /// The docker-style exit code.
    public static let exitCode = "exit_code"
    /// Why a VM stopped, or why a record cannot be read.
    public static let reason = "reason"
    /// A file unid read or wrote (an unreadable record's `state.json` or `vms.db`).
    public static let path = "path"
}
