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
    /// The SQLite database of `unid --vm-store sqlite`, next to the VM folders.
    public var databasePath: String { vmsDirectory + "/vms.db" }
    /// The VM event history (rotated to `events.jsonl.1`).
    public var eventsPath: String { root + "/events.jsonl" }
    /// The local image store (`ImageStore`).
    public var imagesDirectory: String { root + "/images" }
    /// Registry credentials saved by `uni login`, mode 0600.
    public var registryAuthPath: String { root + "/registry-auth.json" }
    /// The folder of one VM: its record and runtime files.
    public func vmDirectory(_ id: VMID) -> String { vmsDirectory + "/" + id.rawValue }

    /// The longest Unix socket path Uni can use, in bytes. The kernel's
    /// `sun_path` holds 107 and a NUL, but SwiftNIO, which binds the API
    /// socket and connects to QMP, refuses paths over 103 bytes
    /// (`SocketAddress(unixDomainSocketPath:)`, the size of macOS's
    /// `sun_path` less its NUL) with `unixDomainSocketPathTooLong`.
    public static let maximumSocketPathBytes = 103

    /// Checks that every socket this data dir will hold fits
    /// ``maximumSocketPathBytes``: the API socket and the QMP socket of any
    /// VM. Touches nothing on disk, so a daemon refuses a data dir before
    /// creating it.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the path, its length and the limit.
    public func validateSocketPaths() throws {
        try DataDirectory.checkSocketPath(socketPath)
        let anyVM = files(of: VMID.random()).qmpSocketPath  // every id has 12 digits
        do {
            try DataDirectory.checkSocketPath(anyVM)
        } catch {
            let shown = vmsDirectory + "/<id>/" + VMDirectory.qmpSocketName
            throw UniError.invalid("data dir '\(root)' is too deep: each VM's QMP socket '\(shown)' would be \(anyVM.utf8.count) bytes, more than the \(DataDirectory.maximumSocketPathBytes) a Unix socket path may have: use a shorter --data-dir")
        }
    }

    /// Checks that `path` fits ``maximumSocketPathBytes``; the one check
    /// of the daemon, the hypervisor and the CLI's client.
    /// - Throws: ``UniError`` (`invalidArgument`) naming the path, its length and the limit.
    public static func checkSocketPath(_ path: String) throws {
        let size = path.utf8.count
        guard size > maximumSocketPathBytes else { return }
        throw UniError.invalid("socket path '\(path)' is \(size) bytes, more than the \(maximumSocketPathBytes) a Unix socket path may have: use a shorter --data-dir")
    }

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
