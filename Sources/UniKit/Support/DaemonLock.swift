import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on `<data-dir>/unid.lock`: one daemon per data dir.
///
/// The kernel drops the lock when the process dies, so a crashed daemon never
/// leaves a stale lock behind. The file holds the owner's pid for the message
/// a second daemon prints.
public final class DaemonLock: Sendable {
    private let descriptor: Int32
    /// The lock file's path.
    public let path: String

    /// Takes the lock.
    /// - Throws: ``UniError`` with code `conflict` naming the data dir and the
    ///   running daemon's pid when another process holds it.
    public init(dataDirectory: DataDirectory) throws {
        path = dataDirectory.lockPath
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw UniError(.unavailable, "cannot open lock file '\(path)': \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let owner = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw UniError(.conflict, "another unid is already running on data dir '\(dataDirectory.root)'\(owner.isEmpty ? "" : " (pid \(owner))"): stop it first or use another --data-dir")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        // The pid only improves another daemon's message: a failed write is not worth failing for.
        _ = Array(pid.utf8).withUnsafeBytes { POSIXIO.writeAll(fd, $0) }
        descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
