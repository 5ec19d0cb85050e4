#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The layout of a data dir (`~/.uni` by default): one place that knows every path.
public struct DataDirectory: Sendable, Hashable {
    /// The data dir itself.
    public let root: String

    /// Wraps `root`, made absolute against the current directory.
    public init(root: String) {
        self.root = DataDirectory.absolute(root)
    }

    /// The default data dir: `$UNI_HOME` when set, else `~/.uni`.
    public static func defaultRoot(environment: EnvironmentLookup = .process) -> String {
        if let home = environment["UNI_HOME"], !home.isEmpty { return home }
        let userHome = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? getpwuid(getuid()).map { String(cString: $0.pointee.pw_dir) } ?? "/"
        return userHome.hasSuffix("/") ? userHome + ".uni" : userHome + "/.uni"
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
    /// Lexical only, like `URL.standardized`: symbolic links are not resolved.
    public static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var components: [Substring] = []
        for component in joined.split(separator: "/") {
            switch component {
            case ".": continue
            case "..": _ = components.popLast()
            default: components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }
}
