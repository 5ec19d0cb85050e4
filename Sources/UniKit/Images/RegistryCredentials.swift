import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A user name and password (or token) for one registry: what `uni login`
/// saves and what the registry client sends with Basic auth, or to a
/// Bearer token realm.
public struct RegistryCredentials: Codable, Sendable, Hashable, CustomStringConvertible {
    /// The account name.
    public var username: String
    /// The password or access token.
    public var password: String

    /// Credentials.
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The user name only: a password never reaches a log line.
    public var description: String { "RegistryCredentials(username: \(username))" }

    /// `Basic base64(username:password)`.
    var basicAuthorization: String { "Basic " + Data("\(username):\(password)".utf8).base64EncodedString() }
}

/// The credentials `uni login` saved, one per registry host, in a JSON
/// file (``DataDirectory/registryAuthPath``, `<data-dir>/registry-auth.json`):
///
/// ```json
/// {"registries": {"registry.example:5000": {"username": "ci", "password": "..."}}}
/// ```
///
/// The file is mode 0600 and is always rewritten whole (a temporary file,
/// fsync, rename) under an exclusive `flock` of `registry-auth.json.lock`,
/// so a crash or two concurrent logins never leave it half-written.
/// Passwords are stored as given (like docker's `config.json` without a
/// credential helper): the file's mode is the protection.
public struct RegistryCredentialStore: Sendable {
    /// The file.
    public let path: String

    /// The store at `path`.
    public init(path: String) {
        self.path = path
    }

    /// The store of a data dir: `<data-dir>/registry-auth.json`.
    public init(dataDirectory: DataDirectory) {
        self.init(path: dataDirectory.registryAuthPath)
    }

    private struct File: Codable {
        var registries: [String: RegistryCredentials]
    }

    /// The credentials saved for `registry` (`host[:port]`, case-insensitive), if any.
    /// - Throws: ``UniError`` (`storeFailed`) when the file exists but cannot be read.
    public func credentials(for registry: String) throws -> RegistryCredentials? {
        try read().registries[Self.key(registry)]
    }

    /// The registries that have credentials, sorted.
    /// - Throws: ``UniError`` (`storeFailed`) when the file cannot be read.
    public func registries() throws -> [String] {
        try read().registries.keys.sorted()
    }

    /// Saves `credentials` for `registry`, replacing earlier ones.
    /// - Throws: ``UniError``: `invalidArgument` for an empty user name or a
    ///   malformed registry, `storeFailed` when the file cannot be written.
    public func save(_ credentials: RegistryCredentials, for registry: String) throws {
        guard ImageReference.isRegistry(registry) else {
            throw UniError.invalid("invalid registry '\(registry.escapingControlCharacters)': expected HOST or HOST:PORT")
        }
        guard !credentials.username.isEmpty, !credentials.username.contains(":") else {
            throw UniError.invalid("invalid registry user name '\(credentials.username.escapingControlCharacters)': it must be non-empty and have no ':'")
        }
        try update { $0.registries[Self.key(registry)] = credentials }
    }

    /// Forgets the credentials of `registry`.
    /// - Returns: whether there were any.
    /// - Throws: ``UniError`` (`storeFailed`) when the file cannot be written.
    @discardableResult
    public func remove(registry: String) throws -> Bool {
        var removed = false
        try update { removed = $0.registries.removeValue(forKey: Self.key(registry)) != nil }
        return removed
    }

    static func key(_ registry: String) -> String { registry.lowercased() }

    private func read() throws -> File {
        guard let data = FileManager.default.contents(atPath: path) else { return File(registries: [:]) }
        do {
            return try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw UniError(.storeFailed, "registry credentials file '\(path)' cannot be read (\(JSONCoding.describe(error))): remove it and run `uni login` again", cause: error)
        }
    }

    private static let threadLock = Mutex(())

    private func update(_ change: (inout File) throws -> Void) throws {
        try Self.threadLock.withLock { _ in
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty, mkdir(folder, 0o700) != 0, errno != EEXIST {
                throw UniError(.storeFailed, "cannot create '\(folder)': \(String(cString: strerror(errno)))")
            }
            let lockFile = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard lockFile >= 0 else { throw UniError(.storeFailed, "cannot open '\(path).lock': \(String(cString: strerror(errno)))") }
            defer { close(lockFile) }
            while flock(lockFile, LOCK_EX) != 0, errno == EINTR {}
            var file = try read()
            try change(&file)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            // writeAtomically creates its temporary file 0600, so the
            // renamed file is 0600 whatever the old one's mode was.
            try FileVMStore.writeAtomically(try encoder.encode(file), to: path)
        }
    }
}
