import UniCore
#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered writes to the standard streams (console bytes must reach the
/// terminal as they arrive) without Foundation's `FileHandle`.
enum StandardStreams {
    /// Writes `bytes` to standard output.
    static func writeOutput(_ bytes: [UInt8]) {
        write(bytes, to: STDOUT_FILENO)
    }

    /// Writes one `error: <message>` line to standard error.
    static func writeError(_ message: String) {
        write(Array("error: \(message)\n".utf8), to: STDERR_FILENO)
    }

    /// Writes one `warning: <message>` line to standard error.
    static func writeWarning(_ message: String) {
        write(Array("warning: \(message)\n".utf8), to: STDERR_FILENO)
    }

    /// Failures are dropped: a closed terminal has no one left to tell.
    private static func write(_ bytes: [UInt8], to fd: Int32) {
        _ = bytes.withUnsafeBytes { POSIXIO.writeAll(fd, $0) }
    }
}

/// Starts a detached POSIX thread for blocking I/O, off Swift's cooperative pool.
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attributes, 256 * 1024)
    var thread = pthread_t()
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    let result = pthread_create(&thread, &attributes, { context in
        Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, context)
    // Without a thread (resource exhaustion) the work runs here: slower, still correct.
    if result != 0 { Unmanaged<Box>.fromOpaque(context).takeRetainedValue().body() }
}
