/// Where a VM is in its lifecycle.
///
/// The allowed transitions are the table in `docs/architecture.md`, and
/// ``canTransition(to:)`` is the only place in code that says them: every
/// operation of `VMManager` checks it inside the VM's serial gate.
///
/// | from | to | by |
/// |---|---|---|
/// | (none) | created | create |
/// | created, stopped | starting | start |
/// | starting | running | QEMU up and QMP reports `running` |
/// | starting | stopped | launch failed (`last_error`) |
/// | running | stopping | stop |
/// | running, stopping | stopped | guest exit, stop, kill, QEMU crash |
/// | created, stopped | (removed) | rm; `rm -f` kills a running or stopping VM first |
///
/// `kill` and `rm -f` of a `starting` VM wait (in the gate) until the start
/// has ended, then act on `running` or `stopped`.
public enum VMState: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Recorded, never started (or reset); no process.
    case created
    /// QEMU is being launched; not yet answering QMP.
    case starting
    /// QEMU runs and reported the guest running.
    case running
    /// A graceful stop was requested; waiting for the guest to power off.
    case stopping
    /// No process; `exit_code` tells how it ended.
    case stopped

    /// Whether a QEMU process exists for a VM in this state.
    public var hasProcess: Bool { self == .starting || self == .running || self == .stopping }

    public var description: String { rawValue }

    /// Whether a VM in this state may be removed (the table's `(removed)` row);
    /// `rm -f` first kills a VM that is not.
    public var isRemovable: Bool { self == .created || self == .stopped }

    /// Whether the lifecycle allows moving from this state to `next`.
    public func canTransition(to next: VMState) -> Bool {
        switch (self, next) {
        case (.created, .starting), (.stopped, .starting),
             (.starting, .running), (.starting, .stopped),
             (.running, .stopping), (.running, .stopped),
             (.stopping, .stopped):
            return true
        default:
            return false
        }
    }
}
