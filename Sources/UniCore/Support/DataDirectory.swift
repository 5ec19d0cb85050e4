import Foundation

/// The layout of a data dir (`~/.uni` by default): one place that knows every path.
public struct DataDirectory: Sendable, Hashable {
    /// The data dir itself.
    public let root: String

    /// Wraps `root`, made absolute against the current directory.
    public init(root: String) {
        self.root = DataDirectory.absolute(root)
    }

    /// The default data dir: `$UNI_HOME` when set, else `~/.uni`.
    public static func defaultRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["UNI_HOME"], !home.isEmpty { return home }
        let userHome = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return (userHome as NSString).appendingPathComponent(".uni")
    }

    /// The daemon's API socket.
    public var socketPath: String { root + "/unid.sock" }
    /// The lock file that keeps one daemon per data dir.
    public var lockPath: String { root + "/unid.lock" }
    /// The folder holding one folder per VM.
    public var vmsDirectory: String { root + "/vms" }
    /// The folder of one VM: its record and runtime files.
    public func vmDirectory(_ id: VMID) -> String { vmsDirectory + "/" + id.rawValue }

    /// Makes `path` absolute against the current directory and drops `.`/`..`.
    public static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    /// Creates the data dir (mode 0700, so only its owner reaches the socket) if needed.
    /// - Throws: ``UniError`` naming the path when it cannot be created or is not a folder.
    public func prepare() throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw UniError.invalid("data dir '\(root)' exists and is not a directory")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw UniError(.unavailable, "cannot create data dir '\(root)': \(error.localizedDescription)")
            }
        }
        do {
            try FileManager.default.createDirectory(atPath: vmsDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw UniError(.unavailable, "cannot create '\(vmsDirectory)': \(error.localizedDescription)")
        }
    }
}
