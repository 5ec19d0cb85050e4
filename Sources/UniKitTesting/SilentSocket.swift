#if canImport(Glibc)
import Glibc
#endif
import UniKit

/// A Unix socket that takes connections into its backlog and never
/// answers: a QEMU serving another QMP client, a daemon that hangs.
public final class SilentSocket: Sendable {
    /// The socket's path.
    public let path: String
    private let descriptor: Int32

    /// Listens at `path`.
    /// - Throws: ``UniError`` when the socket cannot be made.
    public init(path: String) throws {
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard bound == 0, listen(listener, 4) == 0 else {
            close(listener)
            throw UniError(.internalError, "cannot listen on \(path)")
        }
        self.path = path
        descriptor = listener
    }

    deinit { close(descriptor) }
}
