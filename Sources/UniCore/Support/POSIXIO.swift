#if canImport(Glibc)
import Glibc
#endif

/// The one `write(2)` loop of the package: the record store, console logs,
/// log lines, the CLI's standard streams and its socket all go through it,
/// so short writes, `EINTR` and a zero-byte write are handled the same way
/// everywhere.
public enum POSIXIO {
    /// Writes all of `bytes` to `fd`, retrying after `EINTR` and continuing
    /// after short writes.
    ///
    /// A write that returns 0 counts as a failure (`EIO`): retrying it could
    /// spin forever. On failure an unknown prefix of `bytes` may have been
    /// written.
    /// - Parameters:
    ///   - fd: An open descriptor, blocking.
    ///   - bytes: What to write; an empty buffer writes nothing.
    ///   - noSignal: Uses `send(2)` with `MSG_NOSIGNAL` (sockets only), so a
    ///     peer that went away gives `EPIPE` instead of killing the process
    ///     with `SIGPIPE`.
    /// - Returns: `nil` once everything is written, or the `errno` of the failure.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, noSignal: Bool = false) -> Int32? {
        guard var next = bytes.baseAddress else { return nil }
        var remaining = bytes.count
        while remaining > 0 {
            let count = noSignal ? send(fd, next, remaining, Int32(MSG_NOSIGNAL)) : write(fd, next, remaining)
            if count < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if count == 0 { return EIO }
            next += count
            remaining -= count
        }
        return nil
    }
}
