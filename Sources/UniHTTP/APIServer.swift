import Foundation
import Hummingbird
import Logging
import NIOCore
import UniKit

/// Builds the daemon's API server on a Unix socket.
public enum APIServer {
    /// An application serving `router` on `socketPath`, mode 0600.
    ///
    /// A stale socket file from a dead daemon is removed first; the caller
    /// must hold the data dir's ``DaemonLock`` so that no live daemon's socket is.
    public static func makeApplication(
        router: Router<BasicRequestContext>,
        socketPath: String,
        logger: Logger,
        onServerRunning: @escaping @Sendable () async -> Void = {}
    ) throws -> some ApplicationProtocol {
        try DataDirectory.checkSocketPath(socketPath)
        if FileManager.default.fileExists(atPath: socketPath) {
            try? FileManager.default.removeItem(atPath: socketPath)
        }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .unixDomainSocket(path: socketPath), serverName: "unid"),
            onServerRunning: { _ in
                chmod(socketPath, 0o600)
                await onServerRunning()
            },
            logger: logger
        )
    }
}
